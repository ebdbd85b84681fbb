"""Every Kopf decorator of kuberds lives here, so all triggers read in one place.

Each trigger is a line or two that calls a thin handler in kuberds.handlers.<kind>.
Observed state comes from Kopf indexes (pods, StatefulSets, nodes, and the custom
resources themselves), not from repeated list calls.
"""

from __future__ import annotations

import logging

import kopf

from kuberds import API_GROUP, API_VERSION, metrics
from kuberds.builders.compare import foreign_keys_patch, is_subset, merge_patch_restoring
from kuberds.builders.meta import AGENT_STATUS_ANNOTATION, MANAGED_BY, owner_of
from kuberds.config import OperatorConfig
from kuberds.handlers import dbinstance, dbsnapshot, unsupported
from kuberds.kube import Kube

DBI = (API_GROUP, API_VERSION, "dbinstances")
SNAPSHOTS = (API_GROUP, API_VERSION, "dbsnapshots")
NOT_YET = [(API_GROUP, API_VERSION, plural) for plural in ("dbclusters", "readreplicas", "cacheclusters")]
ZONE = "topology.kubernetes.io/zone"
# Full drift-correcting pass per object; the first one a whole interval after start-up.
RESYNC = OperatorConfig.from_environment().resync_seconds
# Children whose hand edits are undone at once: the ones that route or admit traffic
# (each watched kind costs memory per object; the rest are put back by the full pass).
WATCHED_CHILDREN = {
    "Service": ("v1", "services"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
}

# Every kind of object kuberds builds and watches: watched with a server-side selector.
CHILD_RESOURCES = [
    "pods",
    "persistentvolumeclaims",
    ("apps", "statefulsets"),
    "services",
    ("networking.k8s.io", "networkpolicies"),
]
MANAGED_BY_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())

log = logging.getLogger("kuberds")


class Operator:
    """Process-wide state the handlers need: the API wrapper and the settings."""

    kube: Kube
    config: OperatorConfig


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    # Finalizers and progress annotations under our own group, not Kopf's defaults.
    settings.persistence.finalizer = "kuberds.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kuberds.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kuberds.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our Events are posted explicitly, Kopf's own warnings too
    settings.execution.max_workers = 8
    # Children are selected by the API server, not filtered here: without this, every pod,
    # claim, StatefulSet, Service and NetworkPolicy of the cluster would stream through us.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = MANAGED_BY_SELECTOR
    settings.watching.server_timeout = 300
    Operator.kube = Kube.from_environment()
    Operator.config = OperatorConfig.from_environment()


# ---------------------------------------------------------------- indexes (observed state)


@kopf.index(*DBI)
def dbinstances(namespace: str, name: str, body: kopf.Body, **_: object) -> dict:
    # What drift correction rebuilds children from and status refreshes start from.
    meta = {k: v for k, v in body["metadata"].items() if k not in ("managedFields", "annotations")}
    return {
        (namespace, name): {
            **{k: body[k] for k in ("apiVersion", "kind", "spec", "status") if k in body},
            "metadata": meta,
        }
    }


# The indexes keep only what the handlers read, not whole objects: with hundreds of
# servers, full pod and claim bodies would be most of the operator's memory.
def _slim(body: kopf.Body, spec_keys: tuple[str, ...], status_keys: tuple[str, ...],
          annotations: tuple[str, ...] = ()) -> dict:  # fmt: skip
    meta = body.get("metadata", {})
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in annotations}
    return {
        "metadata": {
            **{k: meta[k] for k in ("name", "labels", "deletionTimestamp") if k in meta},
            **({"annotations": kept} if kept else {}),
        },
        "spec": {k: v for k, v in (body.get("spec") or {}).items() if k in spec_keys},
        "status": {k: v for k, v in (body.get("status") or {}).items() if k in status_keys},
    }


def _by_owner(namespace: str, labels: dict, value: dict) -> dict | None:
    owner = owner_of(labels)
    return {(namespace, *owner): value} if owner else None


@kopf.index("pods", labels=MANAGED_BY)
def member_pods(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return _by_owner(
        namespace, labels, _slim(body, ("nodeName",), ("conditions", "phase", "podIP"), (AGENT_STATUS_ANNOTATION,))
    )


@kopf.index("apps", "v1", "statefulsets", labels=MANAGED_BY)
def stateful_sets(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return _by_owner(namespace, labels, _slim(body, ("volumeClaimTemplates",), ("updateRevision",)))


@kopf.index("persistentvolumeclaims", labels=MANAGED_BY)
def volume_claims(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return _by_owner(namespace, labels, _slim(body, ("resources", "storageClassName"), ("capacity",)))


@kopf.index("nodes")
def node_zones(name: str, labels: dict, **_: object) -> dict:
    return {name: labels.get(ZONE, "")}


def _zones(node_zones: kopf.Index) -> dict[str, str]:
    return {name: next(iter(zones), "") for name, zones in node_zones.items()}


def _one(index: kopf.Index, key: tuple) -> dict | None:
    return next(iter(index.get(key, [])), None)


# ---------------------------------------------------------------- DBInstance


@kopf.on.resume(*DBI)
@kopf.on.create(*DBI)
@kopf.on.update(*DBI)
@kopf.timer(*DBI, interval=RESYNC, initial_delay=RESYNC, idle=60)
@metrics.instrumented("DBInstance")
def reconcile_dbinstance(body: kopf.Body, namespace: str, name: str, member_pods: kopf.Index,
                         node_zones: kopf.Index, **_: object) -> None:  # fmt: skip
    pods = list(member_pods.get((namespace, "dbinstance", name), []))
    dbinstance.reconcile(Operator.kube, Operator.config, dict(body), pods, _zones(node_zones))


@kopf.on.delete(*DBI)
@metrics.instrumented("DBInstance")
def delete_dbinstance(body: kopf.Body, **_: object) -> None:
    dbinstance.delete(Operator.kube, Operator.config, dict(body))


DBI_CHILDREN = {**MANAGED_BY, "kuberds.io/owner-kind": "dbinstance"}


@kopf.on.event("pods", labels=DBI_CHILDREN)
@kopf.on.event("apps", "v1", "statefulsets", labels=DBI_CHILDREN)
@kopf.on.event("persistentvolumeclaims", labels=DBI_CHILDREN)
@metrics.instrumented("DBInstance")
def dbinstance_members_changed(namespace: str, labels: dict, dbinstances: kopf.Index, member_pods: kopf.Index,
                               stateful_sets: kopf.Index, volume_claims: kopf.Index, node_zones: kopf.Index,
                               **_: object) -> None:  # fmt: skip
    owner = owner_of(labels)
    if owner is None or not dbinstances.get((namespace, owner[1])):
        return
    key = (namespace, *owner)

    def read() -> dbinstance.Observation:  # the indexes as they are when the refresh runs
        return dbinstance.Observation(
            instance=_one(dbinstances, (namespace, owner[1])),
            pods=list(member_pods.get(key, [])),
            claims=list(volume_claims.get(key, [])),
            stateful_set=_one(stateful_sets, key),
            zones=_zones(node_zones),
        )

    action = dbinstance.observe(Operator.kube, Operator.config, namespace, owner[1], read)
    log.debug("DBInstance %s/%s: %s", namespace, owner[1], action)


def _correct_drift(kind: str, event: dict, namespace: str, name: str, labels: dict, dbinstances: kopf.Index) -> None:
    owner = owner_of(labels)
    if not owner or owner[0] != "dbinstance" or event.get("type") not in ("MODIFIED", "DELETED"):
        return
    owner_body = _one(dbinstances, (namespace, owner[1]))
    if owner_body is None or owner_body["metadata"].get("deletionTimestamp"):
        return
    desired = dbinstance.drifted_child(owner_body, Operator.config, kind, name)
    if desired is None:
        return
    actual = event.get("object") or {}
    foreign = foreign_keys_patch(desired, actual) if event["type"] == "MODIFIED" else {}
    if event["type"] == "DELETED":
        Operator.kube.apply(desired)
    elif foreign or not is_subset(desired, actual):
        # A merge patch replaces lists whole (ports, rules, subjects) and nulls the keys
        # others added to our maps; server-side apply alone would keep their list items.
        Operator.kube.merge_patch(kind, namespace, name, merge_patch_restoring(desired, foreign))
    else:
        return
    kopf.event(owner_body, type="Normal", reason="DriftCorrected",
               message=f"{kind} {name} was changed or deleted by hand; restored")  # fmt: skip


def _register_drift_watch(kind: str, resource: tuple) -> None:
    @kopf.on.event(*resource, labels=MANAGED_BY, id=f"drift-{kind.lower()}")
    def correct(event: dict, namespace: str, name: str, labels: dict, dbinstances: kopf.Index, **_: object) -> None:
        _correct_drift(kind, event, namespace, name, labels, dbinstances)


for _kind, _resource in WATCHED_CHILDREN.items():
    _register_drift_watch(_kind, _resource)


# ---------------------------------------------------------------- DBSnapshot and the kinds still to come


@kopf.on.resume(*SNAPSHOTS)
@kopf.on.create(*SNAPSHOTS)
@metrics.instrumented("DBSnapshot")
def reconcile_dbsnapshot(body: kopf.Body, **_: object) -> None:
    dbsnapshot.reconcile(Operator.kube, dict(body))


@kopf.on.delete(*SNAPSHOTS)
@metrics.instrumented("DBSnapshot")
def delete_dbsnapshot(body: kopf.Body, **_: object) -> None:
    dbsnapshot.delete(Operator.kube, dict(body))


def _register_not_yet(resource: tuple) -> None:
    @kopf.on.resume(*resource, id=f"not-yet-{resource[2]}")
    @kopf.on.create(*resource, id=f"not-yet-{resource[2]}")
    @metrics.instrumented(resource[2])
    def not_yet(body: kopf.Body, **_: object) -> None:
        unsupported.reconcile(Operator.kube, dict(body))


for _resource in NOT_YET:
    _register_not_yet(_resource)
