"""A CacheCluster's objects (the cluster as read: builders.cache_spec): its members (a StatefulSet without
volumes: the engines keep their data in memory), the headless Service that names each
member, the engine's endpoints (Memcached: the configuration endpoint over every node's Auto
Discovery port; Redis: the primary and reader endpoints over the role label its agents
move), Memcached's membership ConfigMap, agent.json, the agent's rights, a disruption budget
and a NetworkPolicy. Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.cache_spec import CACHE as CACHE
from kuberds.builders.cache_spec import Cache as Cache
from kuberds.builders.cache_spec import dns_names as dns_names
from kuberds.builders.cache_spec import endpoint_fields as endpoint_fields
from kuberds.builders.cache_spec import snapshot_repository as snapshot_repository
from kuberds.builders.network_policy import allowed_clients, scrapers
from kuberds.builders.rbac import agent_objects
from kuberds.builders.statefulset import (
    HOSTNAME,
    RESTRICTED_CONTAINER,
    TLS_VOLUME,
    ZONE,
    downward_env,
    placement,
    pod_security,
    tls_volume,
)
from kuberds.builders.status import TRUE
from kuberds.contract import CONFIG_DIR, ROLE_LABEL, SETTINGS_FILE, TLS_DIR, environment
from kuberds.contract.memcached import Membership, Node, next_membership

TLS_PORT_NAME = "tls"  # the pods' TLS port when it is a port of its own


# ---------------------------------------------------------------- membership


def pod_ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == TRUE for c in conditions)


def membership(cache: Cache, pods: list[dict], current: Membership | None) -> Membership:
    """The nodes clients hash over: a node joins once its pod is first ready, and leaves only
    when the spec scales it away — a node restarting keeps its place (its new address, when
    it has one), so a blip does not move every client's keys twice."""
    by_name = {p["metadata"]["name"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}
    listed = {n.host: n for n in (current.nodes if current else ())}
    nodes = []
    for ordinal in range(cache.nodes):
        host, pod = cache.node_host(ordinal), by_name.get(names.pod(cache.name, ordinal))
        ip = ((pod or {}).get("status") or {}).get("podIP") or ""
        if pod is not None and ip and pod_ready(pod):
            nodes.append(Node(host, ip, cache.port))
        elif host in listed:
            nodes.append(Node(host, ip or listed[host].ip, cache.port))
    return next_membership(current, tuple(nodes))


def auth_secret(cache: Cache, password: str) -> dict:
    """Made once (create-if-absent), never overwritten: the members hold it."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": cache.meta(names.cache_auth(cache.name)),
            "type": "Opaque", "stringData": {environment.CACHE_PASSWORD.key: password}}  # fmt: skip


def admin_secret(cache: Cache, password: str) -> dict:
    """The agents' own password (made once, never overwritten, never given to applications)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": cache.meta(names.agent_credentials(cache.name)),
            "type": "Opaque", "stringData": {environment.CACHE_ADMIN_PASSWORD.key: password}}  # fmt: skip


def snapshot_key(cache: Cache, passphrase: str) -> dict:
    """Not owned by the cluster: deleting it must not make its snapshots unreadable."""
    meta = cache.owner.metadata(names.backup_key(cache.name), cache.labels(), owned=False)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "stringData": {environment.BACKUP_STORE.cipher_pass.key: passphrase}}  # fmt: skip


def discovery_config_map(cache: Cache, current: Membership, read_at: str | None = None) -> dict:
    """`read_at`: the resourceVersion the membership was computed from; the write is refused
    (409) if another pass wrote since, so two passes never publish one version twice."""
    meta = cache.meta(names.discovery(cache.name), **({"resourceVersion": read_at} if read_at else {}))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": current.data()}


# ---------------------------------------------------------------- objects


def settings_config_map(cache: Cache) -> dict:
    agent_json = cache.engine.agent_config(cache.name, cache.owner.namespace, cache.port, cache.size, cache.spec,
                                           cache.nodes, cache.config.cluster_domain, version=cache.version,
                                           snapshots=cache.snapshot_plan, restore=cache.restore,
                                           tls=cache.client_tls)  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": cache.meta(names.settings(cache.name)),
            "data": {SETTINGS_FILE: agent_json}}  # fmt: skip


def _service(cache: Cache, name: str, ports: list[dict], headless: bool = False, role: str | None = None) -> dict:
    selector = {**cache.selector(), **({ROLE_LABEL: role} if role else {})}
    spec: dict = {"type": "ClusterIP", "selector": selector, "ports": ports}
    if headless:
        # Every node keeps its name while it is not ready: clients find a restarting node
        # where it was (discovery still lists it).
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
    return {"apiVersion": "v1", "kind": "Service", "metadata": cache.meta(name), "spec": spec}


def services(cache: Cache) -> list[dict]:
    engine = cache.spec.engine

    def tls() -> list[dict]:
        return [{"name": TLS_PORT_NAME, "port": cache.extra_tls_port, "targetPort": TLS_PORT_NAME,
                 "protocol": "TCP"}] if cache.extra_tls_port else []  # fmt: skip

    node_port = {"name": engine, "port": cache.port, "targetPort": engine, "protocol": "TCP"}
    endpoints = [
        _service(cache, cache.name + e.suffix, [{"name": e.target_port, "port": cache.port,
                                                  "targetPort": e.target_port, "protocol": "TCP"}, *tls()], role=e.role)
        for e in cache.engine.endpoints
    ]  # fmt: skip
    return [_service(cache, names.headless_service(cache.name), [node_port, *tls()], headless=True), *endpoints]


def _pod_spec(cache: Cache) -> dict:
    engine, layout = cache.engine, cache.engine.layout
    scratch = [(f"scratch-{i}", path) for i, path in enumerate(layout.writable_paths)]
    container = {
        "name": engine.name,
        "image": cache.config.images[engine.name],
        "imagePullPolicy": cache.config.image_pull_policy,
        "args": ["agent", engine.name],
        "env": [
            *downward_env(),
            *(
                [
                    environment.secret_env(environment.CACHE_PASSWORD, cache.auth_secret),
                    environment.secret_env(environment.CACHE_ADMIN_PASSWORD, names.agent_credentials(cache.name)),
                ]
                if cache.auth_secret
                else []
            ),
            *_store_env(cache),
        ],
        "ports": [
            {"name": engine.name, "containerPort": cache.port, "protocol": "TCP"},
            {"name": engine.agent_port_name, "containerPort": layout.agent_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": layout.metrics_port, "protocol": "TCP"},
            *(
                [{"name": TLS_PORT_NAME, "containerPort": cache.extra_tls_port, "protocol": "TCP"}]
                if cache.extra_tls_port
                else []
            ),
        ],
        "resources": cache.size.resources(),
        **engine.probes(cache.port),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            *({"name": name, "mountPath": path} for name, path in scratch),
            *([{"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True}] if cache.tls_secret else []),
        ],
        "securityContext": dict(RESTRICTED_CONTAINER),
    }
    selector = {"matchLabels": cache.selector()}
    spread = "DoNotSchedule" if cache.spec.multi_az else "ScheduleAnyway"
    spec: dict = {
        "serviceAccountName": names.agent(cache.name),
        "securityContext": pod_security(layout.uid),
        # Time for a primary to hand over (writes paused until its replicas have every write).
        "terminationGracePeriodSeconds": 30,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": names.settings(cache.name)}},
            *({"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"} if path in layout.private_paths
               else {}} for name, path in scratch),
            *([tls_volume(cache.tls_secret, with_ca=True)] if cache.tls_secret else []),
        ],
        # Members spread over zones and hosts: losing a zone loses a share of Memcached's keys,
        # not all of them, and a Redis replica survives its primary's zone. Required with
        # multiAZ; else a preference, so a cluster larger than the zones still starts.
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": spread,
                                       "labelSelector": selector, "nodeTaintsPolicy": "Honor"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": HOSTNAME, "labelSelector": selector}}]}},
        **placement(cache.spec.scheduling),
    }  # fmt: skip
    return spec


def _store_env(cache: Cache) -> list[dict]:
    """The snapshot store's keys and passphrase; the restored snapshot's (member 0 reads them once)."""
    store = cache.snapshot_store
    own = environment.store_env(environment.BACKUP_STORE, store.credentials_secret_name,
                                cache.snapshot_key_secret) if store else []  # fmt: skip
    restore = environment.store_env(environment.RESTORE_STORE, cache.restore_credentials,
                                    cache.restore_key_secret) if cache.restore else []  # fmt: skip
    return own + restore


def stateful_set(cache: Cache) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": cache.meta(names.stateful_set(cache.name)),
        "spec": {
            "replicas": cache.nodes,
            "serviceName": names.headless_service(cache.name),
            "selector": {"matchLabels": cache.selector()},
            "podManagementPolicy": "Parallel",
            # A changed template restarts one node at a time: each restart empties that node.
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": cache.labels()}, "spec": _pod_spec(cache)},
        },
    }


def disruption_budget(cache: Cache) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": cache.meta(names.disruption_budget(cache.name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": cache.selector()},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }  # fmt: skip


def network_policy(cache: Cache) -> dict:
    """The members reach each other (replication), the allowed clients (default: this
    namespace) reach the members and, where an endpoint is served by the agent (Auto
    Discovery), its port; metrics scrapes come from the operator's namespace or labelled ones.
    Nothing else."""
    layout = cache.engine.layout
    agent_served = any(e.target_port == cache.engine.agent_port_name for e in cache.engine.endpoints)

    def port(number: int) -> dict:
        return {"protocol": "TCP", "port": number}

    def tls() -> list[dict]:
        return [port(cache.extra_tls_port)] if cache.extra_tls_port else []

    client_ports = [port(cache.port), *tls(), *([port(layout.agent_port)] if agent_served else [])]

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": cache.meta(names.network_policy(cache.name)),
        "spec": {
            "podSelector": {"matchLabels": cache.selector()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": cache.selector()}}], "ports": [port(cache.port), *tls()]},
                {"from": allowed_clients(cache), "ports": client_ports},
                {"from": scrapers(cache), "ports": [port(layout.metrics_port)]},
            ],
        },
    }


def cache_objects(cache: Cache, discovery: Membership | None = None, read_at: str | None = None) -> list[dict]:
    """Every object of the cluster, in apply order: what the pods mount and the agent's rights
    before the StatefulSet that starts them (`discovery`: the membership to publish, for an
    engine that publishes one)."""
    published = [discovery_config_map(cache, discovery, read_at)] if cache.engine.publishes_membership else []
    return [
        settings_config_map(cache),
        *published,
        *agent_objects(cache, cache.nodes, [name for name, _ in cache.engine.secrets(cache.spec)]),
        *services(cache),
        network_policy(cache),
        disruption_budget(cache),
        stateful_set(cache),
    ]
