"""Every Kopf decorator of kuberds lives here, so all triggers read in one place.

Every kind of the API (kuberds.api.v1alpha1.KINDS) is registered from its handler's role
(kuberds.handlers): server kinds (reconciled, refreshed from their members, kept as built,
finalized with a final snapshot, switched over on request), cache kinds, plain kinds, and
kinds without a handler. Each trigger calls a thin handler; observed state comes from Kopf
indexes (pods, StatefulSets, claims, nodes, the objects themselves), not list calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

import kopf

from kuberds import API_GROUP, API_VERSION, metrics
from kuberds.api.kinds import Kind
from kuberds.api.requests import SWITCHOVER_ANNOTATION
from kuberds.api.v1alpha1 import KINDS
from kuberds.builders import names
from kuberds.builders.cache import CACHE
from kuberds.builders.meta import MANAGED_BY, OWNER_KIND_LABEL, owner_of
from kuberds.builders.proxy import PROXY
from kuberds.builders.routing import LEADER_ANNOTATION
from kuberds.builders.server import DATABASE
from kuberds.config import OperatorConfig
from kuberds.contract import AGENT_STATUS_ANNOTATION
from kuberds.handlers import CACHE_HANDLERS, HANDLERS, SERVER_HANDLERS, dbcluster, readreplica, unsupported
from kuberds.indexes import by_name, by_owner, one, slim, zones
from kuberds.kube import Kube, terminating
from kuberds.operations import routing, status, storage_autoscaler
from kuberds.operations.rollout import Members

ZONE = "topology.kubernetes.io/zone"
# Kopf keeps its progress and diff-base in annotations under this prefix, and compares no
# change to annotations under it (so no request of a person may live there).
KOPF_STATE_PREFIX = API_GROUP
# Full drift-correcting pass per object; the first one a whole interval after start-up.
RESYNC = OperatorConfig.from_environment().resync_seconds
STORAGE_CHECK = OperatorConfig.from_environment().storage_check_seconds
READER_AUTOSCALING = OperatorConfig.from_environment().reader_autoscaling_seconds
# Children whose hand edits are undone at once: the ones that route or admit traffic
# (each watched kind costs memory per object; the rest are put back by the full pass).
WATCHED_CHILDREN = {"Service": ("v1", "services"), "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies")}

# Every kind of object kuberds builds and watches: watched with a server-side selector.
CHILD_RESOURCES = ["pods", "persistentvolumeclaims", ("apps", "statefulsets"), ("apps", "deployments"), "services",
                   ("networking.k8s.io", "networkpolicies")]  # fmt: skip
MANAGED_BY_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
COMPONENT = "app.kubernetes.io/component"
# The HA manager's own ConfigMaps (Patroni's leader lease among them) and the agents' leader
# Leases carry the server's selector labels but not managed-by: every database server's only.
HA_OBJECTS_SELECTOR = f"{COMPONENT}={DATABASE},{OWNER_KIND_LABEL}"

log = logging.getLogger("kuberds")


class Operator:
    """Process-wide state the handlers need: the API wrapper and the settings."""

    kube: Kube
    config: OperatorConfig


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    # Finalizers and progress annotations under our own group, not Kopf's defaults.
    settings.persistence.finalizer = "kuberds.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_STATE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_STATE_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our Events are posted explicitly, Kopf's own warnings too
    settings.execution.max_workers = 8
    # Children are selected by the API server, not filtered here: without this, every pod,
    # claim, StatefulSet, Service and NetworkPolicy of the cluster would stream through us.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = MANAGED_BY_SELECTOR
    settings.watching.label_selectors["configmaps"] = HA_OBJECTS_SELECTOR
    settings.watching.label_selectors[("coordination.k8s.io", "leases")] = HA_OBJECTS_SELECTOR
    settings.watching.server_timeout = 300
    Operator.kube = Kube.from_environment()
    Operator.config = OperatorConfig.from_environment()


def _resource(kind: Kind) -> tuple[str, str, str]:
    return (API_GROUP, API_VERSION, kind.plural)


def reported(kind: str) -> Callable:  # counted, timed, and a failure no condition explains made visible
    return status.reported(kind, lambda: Operator.kube)


# ---------------------------------------------------------------- indexes (observed state)


@kopf.index("pods", labels={**MANAGED_BY, COMPONENT: DATABASE})
def member_pods(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return by_owner(
        namespace, labels, slim(body, ("nodeName",), ("conditions", "phase", "podIP"), (AGENT_STATUS_ANNOTATION,))
    )


@kopf.index("pods", labels={**MANAGED_BY, COMPONENT: PROXY})
def proxy_pods(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    # Their addresses: the operator pauses their consoles around a switchover.
    return by_owner(namespace, labels, slim(body, (), ("podIP", "phase")))


def _is_leader_object(name: str, labels: dict, **_: object) -> bool:
    owner = owner_of(labels)
    return owner is not None and name == names.leader_object(owner[1])


LEADERS = {COMPONENT: DATABASE, OWNER_KIND_LABEL: kopf.PRESENT}
LEASES = ("coordination.k8s.io", "v1", "leases")


@kopf.index("configmaps", labels=LEADERS, when=_is_leader_object)
@kopf.index(*LEASES, labels=LEADERS, when=_is_leader_object, id="ha_leases")
def ha_leaders(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    # The leader lease of each server (Patroni's ConfigMap, or the agents' Lease where the
    # engine's agents decide themselves): the writer endpoint follows its holder.
    leader = routing.leader_of(dict(body))
    return by_owner(namespace, labels, {"metadata": {"annotations": {LEADER_ANNOTATION: leader} if leader else {}}})


@kopf.index("apps", "v1", "deployments", labels={**MANAGED_BY, COMPONENT: PROXY})
def proxies(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return by_owner(namespace, labels, slim(body, ("replicas",), ("readyReplicas", "replicas")))


@kopf.index("apps", "v1", "statefulsets", labels=MANAGED_BY)
def stateful_sets(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return by_owner(namespace, labels, slim(body, ("volumeClaimTemplates",), ("updateRevision",)))


@kopf.index("persistentvolumeclaims", labels=MANAGED_BY)
def volume_claims(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return by_owner(namespace, labels, slim(body, ("resources", "storageClassName"), ("capacity",)))


@kopf.index("nodes")
def node_zones(name: str, labels: dict, **_: object) -> dict:
    return {name: labels.get(ZONE, "")}


@kopf.on.event("namespaces")
def namespace_changed(name: str, status: dict, meta: dict, **_: object) -> None:
    # A namespace being deleted takes nothing new, Events included: say nothing there from now.
    if status.get("phase") == "Terminating" or meta.get("deletionTimestamp"):
        terminating(name, seen=True)


@kopf.index(API_GROUP, API_VERSION, "readreplicas", id="replicas_of_sources")
def replicas_of_sources(namespace: str, name: str, body: kopf.Body, **_: object) -> dict | None:
    # The replicas of each source, oldest first: the limit per source counts them.
    kind, source = readreplica.source_of(dict(body))
    created = body["metadata"].get("creationTimestamp", "")
    return {(namespace, kind, source): (created, name)} if source else None


@kopf.on.event(API_GROUP, API_VERSION, "dbinstances", id="replica-sources")
def replica_source_changed(event: dict, namespace: str, name: str, replicas_of_sources: kopf.Index,
                           readreplicas: kopf.Index, **_: object) -> None:  # fmt: skip
    # A source that goes is said on its replicas at once, not at their next resync.
    if event.get("type") != "DELETED":
        return
    for _created, replica in list(replicas_of_sources.get((namespace, "DBInstance", name), [])):  # a copy: it changes
        body = one(readreplicas, (namespace, replica))
        if body is not None:
            readreplica.source_gone(Operator.kube, Operator.config, body)


@kopf.timer(API_GROUP, API_VERSION, "dbclusters", id="reader-autoscaling", interval=READER_AUTOSCALING,
            initial_delay=READER_AUTOSCALING, when=lambda spec, **_: bool(spec.get("readerAutoscaling")))  # fmt: skip
@reported("DBCluster")
def reader_autoscaling(body: kopf.Body, namespace: str, name: str, member_pods: kopf.Index, **_: object) -> None:
    pods = list(member_pods.get((namespace, dbcluster.KIND.lower(), name), []))
    log.debug("DBCluster %s/%s readers: %s", namespace, name, dbcluster.autoscale_readers(Operator.kube, dict(body),
                                                                                          pods))  # fmt: skip


def _server_index(kind: Kind) -> str:  # the id (and keyword) of the index of a server kind's own objects
    return kind.plural


# ---------------------------------------------------------------- server kinds


def _register_server(kind: Kind, handler: ModuleType) -> None:
    resource, label, index = _resource(kind), kind.owner_label, _server_index(kind)

    kopf.index(*resource, id=index)(by_name)

    @kopf.on.resume(*resource, id=f"reconcile_{kind.singular}")
    @kopf.on.create(*resource, id=f"reconcile_{kind.singular}")
    @kopf.on.update(*resource, id=f"reconcile_{kind.singular}")
    @kopf.timer(*resource, id=f"reconcile_{kind.singular}", interval=RESYNC, initial_delay=RESYNC, idle=60)
    @reported(kind.kind)
    def reconcile(body: kopf.Body, namespace: str, name: str, member_pods: kopf.Index, node_zones: kopf.Index,
                  replicas_of_sources: kopf.Index, **_: object) -> None:  # fmt: skip
        pods = list(member_pods.get((namespace, label, name), []))

        def replicas_of(namespace: str, kind: str, source: str) -> list[tuple[str, str]]:
            return sorted(replicas_of_sources.get((namespace, kind, source), []))

        handler.reconcile(Operator.kube, Operator.config, dict(body), pods, zones(node_zones), replicas_of)

    @kopf.timer(*resource, id=f"storage_{kind.singular}", interval=STORAGE_CHECK, initial_delay=STORAGE_CHECK)
    @reported(kind.kind)
    def storage_check(body: kopf.Body, namespace: str, name: str, member_pods: kopf.Index, volume_claims: kopf.Index,
                      stateful_sets: kopf.Index, node_zones: kopf.Index, **_: object) -> None:  # fmt: skip
        if not storage_autoscaler.wanted(dict(body)):
            return  # nothing to look at: the refresh reports free space already
        key = (namespace, label, name)
        action = handler.check_storage(Operator.kube, Operator.config, dict(body), one(stateful_sets, key),
                                       list(member_pods.get(key, [])), list(volume_claims.get(key, [])),
                                       zones(node_zones))  # fmt: skip
        log.debug("%s %s/%s storage: %s", kind.kind, namespace, name, action)

    @kopf.on.delete(*resource, id=f"delete_{kind.singular}")
    @reported(kind.kind)
    def delete(body: kopf.Body, **_: object) -> None:
        handler.delete(Operator.kube, Operator.config, dict(body))

    if hasattr(handler, "switchover"):  # a person's request (kuberds.api.requests)
        _register_switchover(kind, handler)

    children = {**MANAGED_BY, OWNER_KIND_LABEL: label}

    def refresh(namespace: str, owner: tuple[str, str] | None, indexes: dict) -> None:
        servers: kopf.Index = indexes[index]
        if owner is None or not servers.get((namespace, owner[1])):
            return
        key = (namespace, *owner)

        def read() -> Members:  # the indexes as they are when the refresh runs
            return Members(
                body=one(servers, (namespace, owner[1])),
                pods=list(indexes["member_pods"].get(key, [])),
                claims=list(indexes["volume_claims"].get(key, [])),
                stateful_set=one(indexes["stateful_sets"], key),
                zones=zones(indexes["node_zones"]),
                proxy=one(indexes["proxies"], key),
                proxy_pods=list(indexes["proxy_pods"].get(key, [])),
                leader=one(indexes["ha_leaders"], key) or one(indexes["ha_leases"], key),
            )

        action = handler.refresh(Operator.kube, Operator.config, namespace, owner[1], read)
        log.debug("%s %s/%s: %s", kind.kind, namespace, owner[1], action)

    @kopf.on.event("pods", labels=children, id=f"{kind.singular}-members-pods")
    @kopf.on.event("apps", "v1", "statefulsets", labels=children, id=f"{kind.singular}-members-statefulsets")
    @kopf.on.event("persistentvolumeclaims", labels=children, id=f"{kind.singular}-members-claims")
    @kopf.on.event("apps", "v1", "deployments", labels=children, id=f"{kind.singular}-members-proxy")
    @metrics.instrumented(kind.kind)
    def members_changed(namespace: str, labels: dict, **indexes: object) -> None:
        refresh(namespace, owner_of(labels), indexes)

    def lease_moved(name: str, namespace: str, labels: dict, body: kopf.Body, **_: object) -> bool:
        # The lease is renewed every few seconds: a refresh only when its holder changed (or
        # the endpoints were last written a while ago); a filter, so renewals cost no handler.
        owner = owner_of(labels)
        return _is_leader_object(name, labels) and routing.due((kind.kind, namespace, owner[1]), dict(body))

    @kopf.on.event("configmaps", labels={COMPONENT: DATABASE, OWNER_KIND_LABEL: label}, when=lease_moved,
                   id=f"{kind.singular}-leader-lease")  # fmt: skip
    @kopf.on.event(*LEASES, labels={COMPONENT: DATABASE, OWNER_KIND_LABEL: label}, when=lease_moved,
                   id=f"{kind.singular}-leader-agents-lease")  # fmt: skip
    @metrics.instrumented(kind.kind)
    def lease_changed(namespace: str, labels: dict, **indexes: object) -> None:
        refresh(namespace, owner_of(labels), indexes)


def _register_switchover(kind: Kind, handler: ModuleType) -> None:
    asked, label = {SWITCHOVER_ANNOTATION: kopf.PRESENT}, kind.owner_label

    # Level-triggered: every event that shows the request (Kopf compares no annotation under its
    # own prefix, and an edge would be lost while another change of the object is retried).
    @kopf.on.event(*_resource(kind), id=f"switchover_{kind.singular}", annotations=asked)
    @metrics.instrumented(kind.kind)
    def switchover(event: dict, body: kopf.Body, namespace: str, name: str, member_pods: kopf.Index,
                   proxy_pods: kopf.Index, node_zones: kopf.Index, **_: object) -> None:  # fmt: skip
        if event.get("type") == "DELETED":
            return
        pods, proxies = member_pods.get((namespace, label, name), []), proxy_pods.get((namespace, label, name), [])
        outcome = handler.switchover(Operator.kube, Operator.config, dict(body), list(pods), list(proxies),
                                     zones(node_zones))  # fmt: skip
        log.info("%s %s/%s: %s", kind.kind, namespace, name, outcome)


SERVER_KINDS = {k.owner_label: (k, SERVER_HANDLERS[k.kind]) for k in KINDS if k.kind in SERVER_HANDLERS}
for _kind, _handler in SERVER_KINDS.values():
    _register_server(_kind, _handler)


CACHE_KINDS = {k.owner_label: (k, CACHE_HANDLERS[k.kind]) for k in KINDS if k.kind in CACHE_HANDLERS}
OWNING_KINDS = {**SERVER_KINDS, **CACHE_KINDS}  # their Services and NetworkPolicies are put back at once


def _register_drift_watch(child_kind: str, resource: tuple) -> None:
    @kopf.on.event(*resource, labels=MANAGED_BY, id=f"drift-{child_kind.lower()}")
    def correct(event: dict, namespace: str, name: str, labels: dict, **indexes: object) -> None:
        owner = owner_of(labels)
        if owner is None or owner[0] not in OWNING_KINDS:
            return
        kind, handler = OWNING_KINDS[owner[0]]
        body = one(indexes[_server_index(kind)], (namespace, owner[1]))  # type: ignore[arg-type]
        if body is not None:
            handler.correct_drift(Operator.kube, Operator.config, body, event, child_kind, name)


for _child, _child_resource in WATCHED_CHILDREN.items():
    _register_drift_watch(_child, _child_resource)


# ---------------------------------------------------------------- cache kinds


@kopf.index("pods", labels={**MANAGED_BY, COMPONENT: CACHE})
def cache_pods(namespace: str, labels: dict, body: kopf.Body, **_: object) -> dict | None:
    return by_owner(namespace, labels, slim(body, ("nodeName",), ("conditions", "phase", "podIP")))


def _register_cache(kind: Kind, handler: ModuleType) -> None:
    resource, label = _resource(kind), kind.owner_label

    kopf.index(*resource, id=kind.plural)(by_name)

    @kopf.on.resume(*resource, id=f"reconcile_{kind.singular}")
    @kopf.on.create(*resource, id=f"reconcile_{kind.singular}")
    @kopf.on.update(*resource, id=f"reconcile_{kind.singular}")
    @kopf.timer(*resource, id=f"reconcile_{kind.singular}", interval=RESYNC, initial_delay=RESYNC, idle=60)
    @reported(kind.kind)
    def reconcile(body: kopf.Body, namespace: str, name: str, cache_pods: kopf.Index, node_zones: kopf.Index,
                  **_: object) -> None:  # fmt: skip
        pods = list(cache_pods.get((namespace, label, name), []))
        handler.reconcile(Operator.kube, Operator.config, dict(body), pods, zones(node_zones))

    @kopf.on.event("pods", labels={**MANAGED_BY, COMPONENT: CACHE, OWNER_KIND_LABEL: label},
                   id=f"{kind.singular}-nodes-pods")  # fmt: skip
    @metrics.instrumented(kind.kind)
    def nodes_changed(namespace: str, labels: dict, cache_pods: kopf.Index, node_zones: kopf.Index,
                      **indexes: object) -> None:  # fmt: skip
        owner, clusters = owner_of(labels) or ("", ""), indexes[kind.plural]

        def read() -> handler.Seen:  # the indexes as they are when the refresh runs (an unknown owner: None)
            return handler.Seen(one(clusters, (namespace, owner[1])), list(cache_pods.get((namespace, *owner), [])),
                                zones(node_zones))  # fmt: skip

        log.debug("%s %s/%s: %s", kind.kind, namespace, owner[1],
                  handler.refresh(Operator.kube, Operator.config, (namespace, owner[1]), read))  # fmt: skip


# ---------------------------------------------------------------- plain kinds, and those still to come


def _register_snapshots(kind: Kind, handler: ModuleType) -> None:
    resource = _resource(kind)

    @kopf.index(*resource, id="snapshots_of_sources")
    def snapshots_of_sources(namespace: str, name: str, body: kopf.Body, **_: object) -> dict | None:
        source = handler.source_of(dict(body))
        return {(namespace, *source): name} if source[1] else None

    @kopf.on.resume(*resource, id=f"reconcile_{kind.singular}")
    @kopf.on.create(*resource, id=f"reconcile_{kind.singular}")
    @reported(kind.kind)
    def reconcile(body: kopf.Body, namespace: str, snapshots_of_sources: kopf.Index, **_: object) -> None:
        source = handler.source_of(dict(body))
        siblings = list(snapshots_of_sources.get((namespace, *source), []))
        handler.reconcile(Operator.kube, Operator.config, dict(body), siblings)

    @kopf.on.delete(*resource, id=f"delete_{kind.singular}")
    @reported(kind.kind)
    def delete(body: kopf.Body, **_: object) -> None:
        handler.delete(Operator.kube, Operator.config, dict(body))


def _register_unsupported(kind: Kind) -> None:
    resource = _resource(kind)

    @kopf.on.resume(*resource, id=f"not-yet-{kind.plural}")
    @kopf.on.create(*resource, id=f"not-yet-{kind.plural}")
    @reported(kind.plural)
    def not_yet(body: kopf.Body, **_: object) -> None:
        unsupported.reconcile(Operator.kube, Operator.config, dict(body))


for _kind in KINDS:
    if _kind.kind in HANDLERS:
        _register_snapshots(_kind, HANDLERS[_kind.kind])
    elif _kind.kind in CACHE_HANDLERS:
        _register_cache(_kind, CACHE_HANDLERS[_kind.kind])
    elif _kind.kind not in SERVER_HANDLERS:
        _register_unsupported(_kind)
