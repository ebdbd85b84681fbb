"""A server's StatefulSet: its pods (the engine's image running the agent) and volumes. Pure."""

from __future__ import annotations

import copy

from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.api.schema import to_json
from kuberds.builders import names
from kuberds.builders.server import Server
from kuberds.contract import CONFIG_DIR, TLS_CA_FILE, TLS_DIR, TLS_FILES, environment

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
DATA_VOLUME = "data"
TLS_VOLUME = "tls"
PRIVATE_SIZE = "64Mi"  # configuration files and keys: a few kB; counted against the pod's memory


def _spread(server: Server) -> list[dict]:
    """Multi-AZ and DBClusters: the pods MUST spread over zones (a standby in the primary's
    zone protects nothing). Single-AZ: spreading is only a preference."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "DoNotSchedule" if server.zones_required else "ScheduleAnyway",
            "labelSelector": {"matchLabels": server.selector()},
            # Zones whose nodes the pods may not go to (tainted) are not zones to spread over:
            # counted, one empty zone would hold the third member of a cluster back.
            "nodeTaintsPolicy": "Honor",
        }
    ]


def _apart(server: Server) -> dict:
    term = {"topologyKey": HOSTNAME, "labelSelector": {"matchLabels": server.selector()}}
    if server.hosts_required:
        return {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}


# Every engine container: Pod Security "restricted".
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def pod_security(uid: int) -> dict:
    """The pod's security context: the image's non-root user and group, RuntimeDefault seccomp."""
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip


def downward_env() -> list[dict]:
    """Who the pod is (contract.environment): its name, namespace and address."""

    def field_ref(path: str) -> dict:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    return [
        {"name": environment.POD_NAME, **field_ref("metadata.name")},
        {"name": environment.POD_NAMESPACE, **field_ref("metadata.namespace")},
        {"name": environment.POD_IP, **field_ref("status.podIP")},
    ]


def placement(scheduling) -> dict:
    """The spec's scheduling fields as pod spec fields (only those given)."""
    spec: dict = {}
    if scheduling.node_selector:
        spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        spec["tolerations"] = [to_json(t) for t in scheduling.tolerations]
    if scheduling.priority_class_name:
        spec["priorityClassName"] = scheduling.priority_class_name
    return spec


def _env(server: Server) -> list[dict]:
    refs, credentials = server.secrets, names.agent_credentials(server.name)
    return [
        *downward_env(),
        {
            "name": environment.MEMORY_LIMIT,
            "valueFrom": {"resourceFieldRef": {"containerName": server.engine.name, "resource": "limits.memory"}},
        },
        environment.secret_env(environment.MASTER_PASSWORD, server.master_secret),
        *(environment.secret_env(var, credentials) for var in environment.AGENT_CREDENTIALS),
        *environment.store_env(environment.BACKUP_STORE, refs.store_credentials, refs.backup_key),
        *environment.store_env(environment.RESTORE_STORE, refs.restore_store_credentials, refs.restore_key),
    ]


def _pod_spec(server: Server) -> dict:
    engine, layout = server.engine, server.engine.layout
    size = DB_INSTANCE_CLASSES[server.spec.instance_class]
    scheduling = server.spec.scheduling
    scratch = [(f"scratch-{i}", path) for i, path in enumerate(layout.writable_paths)]
    container = {
        "name": engine.name,
        "image": server.config.images[engine.name],
        "imagePullPolicy": server.config.image_pull_policy,
        "args": ["agent", engine.name],
        "env": _env(server),
        "ports": [
            {"name": engine.name, "containerPort": server.port, "protocol": "TCP"},
            {"name": "agent", "containerPort": layout.agent_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": layout.metrics_port, "protocol": "TCP"},
        ],
        "resources": size.resources(),
        # The agent serves its HA API over TLS exactly when kuberds issued the certificate
        # (agent.json then names the CA the pod mounts).
        **engine.probes(api_tls=server.issues_certificate),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": layout.data_mount},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            *({"name": name, "mountPath": path} for name, path in scratch),
            *([{"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True}] if server.tls_secret else []),
        ],
        "securityContext": dict(RESTRICTED_CONTAINER),
    }
    spec: dict = {
        "serviceAccountName": names.agent(server.name),
        "securityContext": {**pod_security(layout.uid), "fsGroupChangePolicy": "OnRootMismatch"},
        # Time for a clean shutdown, so a standby can take over without losing commits.
        "terminationGracePeriodSeconds": 60,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": names.settings(server.name)}},
            *({"name": name, "emptyDir": _scratch(path, layout)} for name, path in scratch),
            *([tls_volume(server.tls_secret, server.issues_certificate)] if server.tls_secret else []),
        ],
        "topologySpreadConstraints": _spread(server),
        "affinity": {"podAntiAffinity": _apart(server)},
        **placement(scheduling),
    }
    return spec


def _scratch(path: str, layout) -> dict:
    """Scratch space; in memory where secrets are written (a disk would keep them)."""
    return {"medium": "Memory", "sizeLimit": PRIVATE_SIZE} if path in layout.private_paths else {}


def tls_volume(secret: str, with_ca: bool) -> dict:
    # The certificate and key, and the CA's certificate when kuberds issued them (never a CA
    # key); group-readable for the engine's fsGroup.
    items = [{"key": file, "path": file} for file in (*TLS_FILES, *((TLS_CA_FILE,) if with_ca else ()))]
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
        "metadata": server.meta(names.stateful_set(server.name)),
        "spec": {
            "replicas": server.replicas,
            "serviceName": names.headless_service(server.name),
            "selector": {"matchLabels": server.selector()},
            "podManagementPolicy": "Parallel",
            # The operator rolls pods itself: replicas first, the primary last (after a switchover).
            "updateStrategy": {"type": "OnDelete"},
            # Deleting the server or scaling down never deletes a volume.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Delete" if server.scale_in_deletes_volumes else "Retain",
            },
            "template": {"metadata": {"labels": server.pod_labels()}, "spec": _pod_spec(server)},
            "volumeClaimTemplates": [
                {"metadata": {"name": DATA_VOLUME, "labels": server.labels()}, "spec": claim_spec}
            ],
        },
    }


def claim_template_size(stateful_set: dict) -> str:
    """The size a live StatefulSet's claims were made with (claim templates cannot change)."""
    return stateful_set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]


def with_claim_size(stateful_set: dict, size: str) -> dict:
    """The live StatefulSet as a new object whose claim templates ask for `size`: what is
    created after the old one is deleted with its pods orphaned (claim templates cannot be
    changed in place). The pod template is the live one, so the new StatefulSet adopts the
    running pods at the same revision and replaces none of them."""
    meta = stateful_set["metadata"]
    kept = ("name", "namespace", "labels", "annotations", "ownerReferences")
    spec = copy.deepcopy(stateful_set["spec"])
    for template in spec["volumeClaimTemplates"]:
        template["spec"]["resources"]["requests"]["storage"] = size
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {k: meta[k] for k in kept if k in meta},
            "spec": spec}  # fmt: skip
