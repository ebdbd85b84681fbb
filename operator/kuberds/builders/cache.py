"""A CacheCluster as the builders see it, and its objects: its members (a StatefulSet without
volumes: the engines keep their data in memory), the headless Service that names each
member, the engine's endpoints (Memcached: the configuration endpoint over every node's Auto
Discovery port; Redis: the primary and reader endpoints over the role label its agents
move), Memcached's membership ConfigMap, agent.json, the agent's rights, a disruption budget
and a NetworkPolicy. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.api import v1alpha1 as api
from kuberds.api.classes import CACHE_NODE_TYPES, Size
from kuberds.api.schema import parse
from kuberds.builders import names, settings
from kuberds.builders.meta import Owner
from kuberds.builders.network_policy import allowed_clients, scrapers
from kuberds.builders.rbac import agent_objects
from kuberds.builders.statefulset import HOSTNAME, RESTRICTED_CONTAINER, ZONE, downward_env, placement, pod_security
from kuberds.builders.status import TRUE
from kuberds.config import OperatorConfig
from kuberds.contract import CONFIG_DIR, ROLE_LABEL, SETTINGS_FILE, environment
from kuberds.contract.memcached import Membership, Node, next_membership
from kuberds.contract.settings import BackupPlan, RestorePlan
from kuberds.engines import CacheEngine
from kuberds.engines.base import CacheEndpoint

CACHE = "cache"  # the app.kubernetes.io/component of a cache's pods and objects


@dataclass(frozen=True)
class Cache:
    owner: Owner
    spec: api.CacheClusterSpec
    engine: CacheEngine
    config: OperatorConfig
    store_ca: str | None = None  # the PEM in the snapshot store's caSecretName (read by the handler)
    restore: RestorePlan | None = None  # resolved from restore.fromSnapshot by the handler
    restore_credentials: str | None = None  # the snapshot's store keys (a Secret of this namespace)
    restore_key_secret: str | None = None  # the snapshot's passphrase

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def snapshot_store(self) -> api.ObjectStore | None:
        return snapshot_store(self.spec, self.config) if self.engine.snapshots else None

    @property
    def snapshot_key_secret(self) -> str | None:
        return snapshot_key_secret(self.name, self.spec)

    @property
    def generates_snapshot_key(self) -> bool:
        return self.snapshot_store is not None and self.snapshot_key_secret == names.backup_key(self.name)

    @property
    def snapshot_plan(self) -> BackupPlan | None:
        store = self.snapshot_store
        if store is None:
            return None
        snapshots = self.spec.snapshots
        repository = settings.repository(self.owner, store, snapshots.encryption.enabled, self.store_ca)
        return BackupPlan(repository, snapshots.retention_days, snapshots.window)

    @property
    def port(self) -> int:
        return self.spec.port or self.engine.info.default_port

    @property
    def version(self) -> str:
        return self.spec.engine_version or self.engine.info.default_version

    @property
    def nodes(self) -> int:
        """Pods: Memcached's nodes, or Redis's primary and replicas."""
        return self.engine.members(self.spec)

    @property
    def auth_secret(self) -> str | None:
        """The Secret with the AUTH password the pods use (None: no AUTH)."""
        auth = self.spec.auth
        if not self.engine.auth or (auth is not None and not auth.enabled):
            return None
        return (auth.secret_name if auth else None) or names.cache_auth(self.name)

    @property
    def generates_auth(self) -> bool:
        return self.auth_secret == names.cache_auth(self.name)

    @property
    def size(self) -> Size:
        return CACHE_NODE_TYPES[self.spec.node_type]

    def labels(self) -> dict[str, str]:
        return self.owner.labels(CACHE, self.spec.engine, self.version)

    def selector(self) -> dict[str, str]:
        return self.owner.selector(CACHE)

    def meta(self, name: str, **extra: dict) -> dict:
        return self.owner.metadata(name, self.labels(), **extra)

    def node_host(self, ordinal: int) -> str:
        """A node's stable DNS name, fully qualified (clients outside the namespace resolve it)."""
        pods = names.headless_service(self.name)
        return f"{names.pod(self.name, ordinal)}.{pods}.{self.owner.namespace}.svc.{self.config.cluster_domain}"


def snapshot_store(spec: api.CacheClusterSpec, config: OperatorConfig) -> api.ObjectStore | None:
    """The spec's store, else the one the operator was installed with, else none."""
    if spec.snapshots.object_store is not None:
        return spec.snapshots.object_store
    return parse(api.ObjectStore, config.default_object_store) if config.default_object_store else None


def snapshot_key_secret(name: str, spec: api.CacheClusterSpec) -> str | None:
    """The Secret with the snapshots' passphrase (None: they are not encrypted)."""
    encryption = spec.snapshots.encryption
    return (encryption.key_secret_name or names.backup_key(name)) if encryption.enabled else None


def snapshot_repository(source: dict, config: OperatorConfig) -> dict | None:
    """For a DBSnapshot of a cache: where its RDB goes, recorded on the snapshot (restores read
    it after the cluster is gone). None: the cluster has no store."""
    spec = parse(api.CacheClusterSpec, source.get("spec"))
    store = snapshot_store(spec, config)
    if store is None:
        return None
    repository = settings.repository(Owner.of(source), store, spec.snapshots.encryption.enabled)
    return api.SnapshotRepository(store=store, path=repository.path, stanza=repository.stanza,
                                  encrypted=repository.encrypted,
                                  key_secret_name=snapshot_key_secret(source["metadata"]["name"], spec))  # fmt: skip


def endpoint_address(cache: Cache, endpoint: CacheEndpoint) -> str:
    return f"{cache.name}{endpoint.suffix}.{cache.owner.namespace}.svc:{cache.port}"


def endpoint_fields(cache: Cache) -> dict[str, str]:
    """status.endpoint (primary or configuration endpoint) and readerEndpoint."""
    field = {"primary": "endpoint", "configuration": "endpoint", "reader": "readerEndpoint"}
    return {field[e.kind]: endpoint_address(cache, e) for e in cache.engine.endpoints}


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
                                           snapshots=cache.snapshot_plan, restore=cache.restore)  # fmt: skip
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
    node_port = {"name": engine, "port": cache.port, "targetPort": engine, "protocol": "TCP"}
    endpoints = [
        _service(cache, cache.name + e.suffix, [{"name": e.target_port, "port": cache.port,
                                                  "targetPort": e.target_port, "protocol": "TCP"}], role=e.role)
        for e in cache.engine.endpoints
    ]  # fmt: skip
    return [_service(cache, names.headless_service(cache.name), [node_port], headless=True), *endpoints]


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
        ],
        "resources": cache.size.resources(),
        **engine.probes(cache.port),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            *({"name": name, "mountPath": path} for name, path in scratch),
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

    client_ports = [port(cache.port), *([port(layout.agent_port)] if agent_served else [])]

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": cache.meta(names.network_policy(cache.name)),
        "spec": {
            "podSelector": {"matchLabels": cache.selector()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": cache.selector()}}], "ports": [port(cache.port)]},
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
