"""The Kubernetes objects of a database server (DBInstance today). Pure: spec in, dicts out.

Names, for a server called NAME:
    NAME            writer Service (selects the pod labelled primary)
    NAME-ro         reader Service (selects pods labelled replica)
    NAME-pods       headless Service (stable pod DNS for replication)
    NAME            StatefulSet, pods NAME-0, NAME-1; volumes data-NAME-0, …
    NAME-master     generated master credentials (never overwritten)
    NAME-settings   agent.json for the in-pod agent (parameters, HA, backup and restore plans)
    NAME-agent-credentials  superuser, replication and HA-API passwords (generated once, never overwritten)
    NAME-backup-key repository passphrase when none is given: NOT owned, so it outlives the
                    server (its final snapshot stays readable)
    NAME-agent      ServiceAccount, Role and RoleBinding of the in-pod agent
    NAME-ca         the server's CA (ca.crt, ca.key) for client TLS: never mounted in pods
    NAME-tls        the served certificate (tls.crt, tls.key) and the CA (ca.crt) clients verify
                    it with; reissued when the endpoints' names change or it nears expiry
    NAME            PodDisruptionBudget, NetworkPolicy
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from kuberds.agent.config import BackupPlan, RestorePlan
from kuberds.api import v1alpha1 as api
from kuberds.api.classes import DB_INSTANCE_CLASSES, DEFAULT_PORTS, default_engine_version
from kuberds.api.schema import to_json
from kuberds.builders.agent import agent_config
from kuberds.builders.certificates import KeyPair
from kuberds.builders.meta import PRIMARY, REPLICA, ROLE_LABEL, ROLE_LABEL_VALUES, Owner
from kuberds.config import OperatorConfig
from kuberds.engines import Engine

DATABASE = "database"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
DATA_VOLUME = "data"
TLS_VOLUME = "tls"
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "kuberds", "app.kubernetes.io/component": "operator"}  # the chart's
TLS_MOUNT = "/etc/kuberds-tls"  # tls.crt and tls.key; the agent copies them for the engine


@dataclass(frozen=True)
class SecretRefs:
    """Secrets the pods read keys from (resolved by the handler)."""

    store_credentials: str | None = None  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    backup_key: str | None = None  # key
    restore_store_credentials: str | None = None
    restore_key: str | None = None


@dataclass(frozen=True)
class Server:
    """Everything the builders need to know about one server, gathered by the handler."""

    owner: Owner
    spec: api.DBInstanceSpec
    engine: Engine
    config: OperatorConfig
    claim_size: str  # the StatefulSet's claim template size: fixed once created
    master_secret: str  # the Secret holding the master password
    backup: BackupPlan | None = None  # None: no object store configured anywhere
    restore: RestorePlan | None = None
    secrets: SecretRefs = field(default_factory=lambda: SecretRefs())

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def replicas(self) -> int:
        return 2 if self.spec.multi_az else 1

    @property
    def port(self) -> int:
        return self.spec.port or DEFAULT_PORTS[self.spec.engine]

    @property
    def version(self) -> str:
        return self.spec.engine_version or default_engine_version(self.spec.engine)

    def labels(self) -> dict[str, str]:
        return self.owner.labels(DATABASE, self.spec.engine, self.version)

    def selector(self) -> dict[str, str]:
        return self.owner.selector(DATABASE)

    def meta(self, name: str, **extra: dict) -> dict:
        return self.owner.metadata(name, self.labels(), **extra)

    @property
    def tls_secret(self) -> str | None:
        """The Secret whose tls.crt/tls.key the pods serve (None: no client TLS)."""
        tls = self.spec.tls
        if not tls.enabled:
            return None
        return tls.certificate_secret_name or f"{self.name}-tls"

    @property
    def issues_certificate(self) -> bool:
        return self.spec.tls.enabled and not self.spec.tls.certificate_secret_name


def writer_endpoint(server: Server) -> str:
    return f"{server.name}.{server.owner.namespace}.svc:{server.port}"


def reader_endpoint(server: Server) -> str:
    return f"{server.name}-ro.{server.owner.namespace}.svc:{server.port}"


def master_secret(server: Server, password: str) -> dict:
    """Created once by the handler and never overwritten (create_if_absent)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.meta(server.master_secret),
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": server.spec.master_username, "password": password},
    }


def agent_credentials(server: Server, superuser: str, replication: str, api: str) -> dict:
    """Created once by the handler and never overwritten (create_if_absent)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.meta(f"{server.name}-agent-credentials"),
        "type": "Opaque",
        "stringData": {"superuser-password": superuser, "replication-password": replication, "api-password": api},
    }


def backup_key(server: Server, passphrase: str) -> dict:
    """Not owned by the server: deleting the server must not make its snapshots unreadable."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.owner.metadata(f"{server.name}-backup-key", server.labels(), owned=False),
        "type": "Opaque",
        "stringData": {"key": passphrase},
    }


def endpoint_names(server: Server) -> list[str]:
    """Every DNS name a client may reach the server by: the writer and reader Services and
    each pod through the headless Service, short and fully qualified."""
    namespace, domain = server.owner.namespace, server.config.cluster_domain
    names = []
    for service in (server.name, f"{server.name}-ro"):
        names += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                  f"{service}.{namespace}.svc.{domain}"]  # fmt: skip
    pods = f"{server.name}-pods.{namespace}.svc"
    names += [f"*.{pods}", f"*.{pods}.{domain}"]
    return names


def ca_secret(server: Server, ca: KeyPair) -> dict:
    """Created once (create_if_absent); owned: a new server gets a new CA."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.meta(f"{server.name}-ca"),
        "type": "Opaque",
        "stringData": {"ca.crt": ca.certificate, "ca.key": ca.key},
    }


def tls_secret(server: Server, ca_certificate: str, served: KeyPair) -> dict:
    """Applied (server-side) whenever reissued, so `data`, not the write-only stringData."""
    values = {"tls.crt": served.certificate, "tls.key": served.key, "ca.crt": ca_certificate}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.meta(f"{server.name}-tls"),
        "type": "kubernetes.io/tls",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def settings_config_map(server: Server) -> dict:
    size = DB_INSTANCE_CLASSES[server.spec.instance_class]
    parameters = server.engine.parameters(size, server.spec.parameters)
    config = agent_config(server.owner, server.spec, selector=server.selector(), port=server.port,
                          version=server.version, parameters=parameters, backup=server.backup,
                          restore=server.restore, tls_directory=TLS_MOUNT if server.tls_secret else None)  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": server.meta(f"{server.name}-settings"),
        "data": {
            "agent.json": config.to_json(),
            "spec.json": json.dumps(to_json(server.spec), indent=1, sort_keys=True),
        },
    }


def _service(server: Server, name: str, selector: dict[str, str], headless: bool = False) -> dict:
    ports = [{"name": server.spec.engine, "port": server.port, "targetPort": server.spec.engine, "protocol": "TCP"}]
    spec: dict = {"type": "ClusterIP", "selector": selector, "ports": ports}
    if headless:
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
        ports.append({"name": "agent", "port": server.engine.agent_port, "targetPort": "agent", "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": server.meta(name), "spec": spec}


def services(server: Server) -> list[dict]:
    selector = server.selector()
    return [
        _service(server, f"{server.name}-pods", selector, headless=True),
        _service(server, server.name, {**selector, ROLE_LABEL: ROLE_LABEL_VALUES[PRIMARY]}),
        _service(server, f"{server.name}-ro", {**selector, ROLE_LABEL: ROLE_LABEL_VALUES[REPLICA]}),
    ]


def agent_rbac(server: Server) -> list[dict]:
    name = f"{server.name}-agent"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": server.meta(name)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": server.meta(name),
            "rules": server.engine.agent_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": server.meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": server.owner.namespace}],
        },
    ]


def _spread(server: Server) -> list[dict]:
    """Multi-AZ: the two pods MUST be in different zones (a standby in the primary's zone
    protects nothing). Single-AZ: spreading is only a preference."""
    required = server.spec.multi_az
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "DoNotSchedule" if required else "ScheduleAnyway",
            "labelSelector": {"matchLabels": server.selector()},
        }
    ]


def _env(server: Server) -> list[dict]:
    refs = server.secrets

    def field_ref(path: str) -> dict:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    return [
        {"name": "POD_NAME", **field_ref("metadata.name")},
        {"name": "POD_NAMESPACE", **field_ref("metadata.namespace")},
        {"name": "POD_IP", **field_ref("status.podIP")},
        # Tells the agent whether this pod already has the instance class agent.json is for.
        {
            "name": "KUBERDS_MEMORY_LIMIT",
            "valueFrom": {"resourceFieldRef": {"containerName": server.engine.name, "resource": "limits.memory"}},
        },
        {"name": "KUBERDS_OWNER_KIND", "value": server.owner.kind},
        {"name": "KUBERDS_OWNER_NAME", "value": server.name},
        {"name": "KUBERDS_ENGINE_VERSION", "value": server.version},
        {"name": "KUBERDS_PORT", "value": str(server.port)},
        {"name": "KUBERDS_MASTER_USERNAME", "value": server.spec.master_username},
        secret_env("KUBERDS_MASTER_PASSWORD", server.master_secret, "password"),
        secret_env("KUBERDS_SUPERUSER_PASSWORD", f"{server.name}-agent-credentials", "superuser-password"),
        secret_env("KUBERDS_REPLICATION_PASSWORD", f"{server.name}-agent-credentials", "replication-password"),
        # Optional: a server created before the key existed keeps an open HA API.
        secret_env("KUBERDS_AGENT_API_PASSWORD", f"{server.name}-agent-credentials", "api-password", optional=True),
        *_store_env("KUBERDS_BACKUP", refs.store_credentials, refs.backup_key),
        *_store_env("KUBERDS_RESTORE", refs.restore_store_credentials, refs.restore_key),
    ]


def secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict:
    reference = {"name": secret, "key": key, **({"optional": True} if optional else {})}
    return {"name": name, "valueFrom": {"secretKeyRef": reference}}


def _store_env(prefix: str, credentials: str | None, key: str | None) -> list[dict]:
    env = []
    if credentials:
        env.append(secret_env(f"{prefix}_ACCESS_KEY_ID", credentials, "AWS_ACCESS_KEY_ID"))
        env.append(secret_env(f"{prefix}_SECRET_ACCESS_KEY", credentials, "AWS_SECRET_ACCESS_KEY"))
    if key:
        env.append(secret_env(f"{prefix}_CIPHER_PASS", key, "key"))
    return env


def _pod_spec(server: Server) -> dict:
    engine = server.engine
    size = DB_INSTANCE_CLASSES[server.spec.instance_class]
    scheduling = server.spec.scheduling
    scratch = [(f"scratch-{i}", path) for i, path in enumerate(engine.writable_paths)]
    container = {
        "name": engine.name,
        "image": server.config.images[engine.name],
        "imagePullPolicy": server.config.image_pull_policy,
        "args": ["agent", engine.name],
        "env": _env(server),
        "ports": [
            {"name": engine.name, "containerPort": server.port, "protocol": "TCP"},
            {"name": "agent", "containerPort": engine.agent_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": engine.metrics_port, "protocol": "TCP"},
        ],
        "resources": size.resources(),
        **engine.probes(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": engine.data_path},
            {"name": "config", "mountPath": "/etc/kuberds", "readOnly": True},
            *({"name": name, "mountPath": path} for name, path in scratch),
            *([{"name": TLS_VOLUME, "mountPath": TLS_MOUNT, "readOnly": True}] if server.tls_secret else []),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec: dict = {
        "serviceAccountName": f"{server.name}-agent",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": engine.uid,
            "runAsGroup": engine.uid,
            "fsGroup": engine.uid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Time for a clean shutdown, so a standby can take over without losing commits.
        "terminationGracePeriodSeconds": 60,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{server.name}-settings"}},
            *({"name": name, "emptyDir": {}} for name, _ in scratch),
            *([_tls_volume(server.tls_secret)] if server.tls_secret else []),
        ],
        "topologySpreadConstraints": _spread(server),
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": server.selector()}}
                ]
            }
        },
    }
    if scheduling.node_selector:
        spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        spec["tolerations"] = [to_json(t) for t in scheduling.tolerations]
    if scheduling.priority_class_name:
        spec["priorityClassName"] = scheduling.priority_class_name
    return spec


def _tls_volume(secret: str) -> dict:
    # Only the certificate and key (never a CA key); group-readable for the engine's fsGroup.
    items = [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]
    return {"name": TLS_VOLUME, "secret": {"secretName": secret, "items": items, "defaultMode": 0o440}}


def stateful_set(server: Server) -> dict:
    claim_spec: dict = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": server.claim_size}},
    }
    if server.spec.storage.storage_class_name:
        claim_spec["storageClassName"] = server.spec.storage.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": server.meta(server.name),
        "spec": {
            "replicas": server.replicas,
            "serviceName": f"{server.name}-pods",
            "selector": {"matchLabels": server.selector()},
            "podManagementPolicy": "Parallel",
            # The operator rolls pods itself: replicas first, the primary last (after a switchover).
            "updateStrategy": {"type": "OnDelete"},
            # Deleting the server or scaling down never deletes a volume.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {"metadata": {"labels": server.labels()}, "spec": _pod_spec(server)},
            "volumeClaimTemplates": [
                {"metadata": {"name": DATA_VOLUME, "labels": server.labels()}, "spec": claim_spec}
            ],
        },
    }


def disruption_budget(server: Server) -> dict:
    # Multi-AZ: one pod at a time. Single-AZ: a voluntary eviction would be an outage, so
    # none — unless the pod is already unhealthy (then draining it costs nothing).
    budget = {"maxUnavailable": 1} if server.spec.multi_az else {"minAvailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": server.meta(server.name),
        "spec": {
            **budget,
            "selector": {"matchLabels": server.selector()},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _selector(selector: api.LabelSelector) -> dict:
    return to_json(selector)


def network_policy(server: Server) -> dict:
    """Admits only: the server's own pods (replication, HA API), the operator's pods (HA API:
    the switchover before a rolling update), the proxy, the allowed clients (default: this
    namespace), and metrics scrapes from the operator's namespace or namespaces labelled
    kuberds.io/metrics-scraper=true."""
    engine = server.engine
    peers = [{"podSelector": {"matchLabels": server.selector()}}]
    proxy = [{"podSelector": {"matchLabels": server.owner.selector("proxy")}}]
    clients = [
        {k: _selector(v) for k, v in (("namespaceSelector", c.namespace_selector), ("podSelector", c.pod_selector))
         if v is not None}
        for c in server.spec.network.allowed_clients
    ] or [{"podSelector": {}}]  # fmt: skip
    namespace_label = {"kubernetes.io/metadata.name": server.config.namespace}
    operator_namespace = {"namespaceSelector": {"matchLabels": namespace_label}}
    # The operator's pods only (the chart's labels), not everything in its namespace.
    operator = [{**operator_namespace, "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)}}]
    scrapers = [operator_namespace, {"namespaceSelector": {"matchLabels": {"kuberds.io/metrics-scraper": "true"}}}]

    def port(number: int) -> list[dict]:
        return [{"protocol": "TCP", "port": number}]

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": server.meta(server.name),
        "spec": {
            "podSelector": {"matchLabels": server.selector()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": port(server.port) + port(engine.agent_port)},
                {"from": operator, "ports": port(engine.agent_port)},
                {"from": proxy + clients, "ports": port(server.port)},
                {"from": scrapers, "ports": port(engine.metrics_port)},
            ],
        },
    }


def server_objects(server: Server) -> list[dict]:
    """Every object of the server except the master Secret, in a safe apply order."""
    return [
        settings_config_map(server),
        *agent_rbac(server),
        *services(server),
        network_policy(server),
        disruption_budget(server),
        stateful_set(server),
    ]
