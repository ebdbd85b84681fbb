"""CacheCluster: Memcached nodes with ElastiCache Auto Discovery (Redis is accepted by the API
and answered EngineNotSupported until its data plane lands).

Thin: `reconcile` is the full pass (every object applied, drift corrected); `refresh` is what
a node's pod event needs — the membership the agents serve, and status.
"""

from __future__ import annotations

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.builders import cache as build
from kuberds.builders import names
from kuberds.builders.meta import Owner
from kuberds.builders.status import TRUE, Condition, Observed
from kuberds.config import OperatorConfig
from kuberds.contract.memcached import Membership
from kuberds.engines import cache_engine_for
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import ownership
from kuberds.operations.secrets import not_reconciled
from kuberds.operations.server_pass import ACTIVE, publish_paused
from kuberds.operations.status import post_event, publish_status

KIND = "CacheCluster"


def spec_of(body: dict) -> api.CacheClusterSpec:
    return shared.spec_of(api.CacheClusterSpec, body)


def _cache(config: OperatorConfig, body: dict) -> build.Cache | None:
    """The cluster kuberds runs, or None (paused, an engine without a data plane, a refused
    parameter, deleting): the full pass says why."""
    spec = spec_of(body)
    engine = cache_engine_for(spec.engine)
    if spec.automation_paused or engine is None or body["metadata"].get("deletionTimestamp"):
        return None
    if engine.parameter_problems(spec.parameters):
        return None
    return build.Cache(Owner.of(body), spec, engine, config)


def _problem(spec: api.CacheClusterSpec) -> Condition | None:
    engine = cache_engine_for(spec.engine)
    if engine is None:
        return not_reconciled("EngineNotSupported", f"engine {spec.engine} is accepted by the API but its data plane "
                              "is not available yet; memcached clusters run today")  # fmt: skip
    refused = engine.parameter_problems(spec.parameters)
    return not_reconciled("InvalidParameter", "; ".join(refused)) if refused else None


def _current_membership(kube: Kube, cache: build.Cache) -> tuple[Membership | None, str | None]:
    """The membership published, and the resourceVersion it was read at (None: none yet)."""
    found = kube.get("ConfigMap", cache.owner.namespace, names.discovery(cache.name))
    if not found or not ownership.belongs(found, cache.owner):
        return None, None
    return Membership.from_data(found.get("data")), found["metadata"].get("resourceVersion")


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str]) -> None:
    """Create or correct every object of the cluster, then publish status."""
    spec = spec_of(body)
    if spec.automation_paused:
        publish_paused(kube, body)
        return
    problem = _problem(spec)
    if problem:
        publish_status(kube, body, [problem, ACTIVE])
        return  # nothing to retry: a change of the spec brings the next pass
    cache = build.Cache(Owner.of(body), spec, cache_engine_for(spec.engine), config)
    current, read_at = _current_membership(kube, cache)
    discovery = build.membership(cache, pods, current)
    objects = build.cache_objects(cache, discovery, read_at)
    namespace = cache.owner.namespace
    holders = {key: kube.get(key[0], namespace, key[2]) for key in ownership.unconfirmed(cache.owner, objects)}
    taken = ownership.conflict(cache.owner, objects, holders)
    if taken:
        publish_status(kube, body, [taken, ACTIVE])
        raise kopf.TemporaryError(taken.message, delay=config.retry_seconds)
    for obj in objects:
        ownership.confirm(cache.owner, kube.apply(obj))
    _said_membership(body, current, discovery)
    generation = body["metadata"]["generation"]
    applied = Condition("Reconciled", TRUE, "ObjectsApplied", f"objects for generation {generation}")
    _publish(kube, body, cache, pods, zones, [applied, ACTIVE])


def refresh(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str]) -> str:
    """A node's pod changed: the membership clients discover, and status."""
    cache = _cache(config, body)
    if cache is None:
        return "nothing: paused, unsupported, refused or deleting"
    current, read_at = _current_membership(kube, cache)
    if current is None:
        return "nothing: the full pass has not made the discovery ConfigMap yet"
    discovery = build.membership(cache, pods, current)
    if discovery != current:
        kube.apply(build.discovery_config_map(cache, discovery, read_at))
        _said_membership(body, current, discovery)
    _publish(kube, body, cache, pods, zones, [])
    return f"discovery version {discovery.version}, {len(discovery.nodes)} nodes"


def _said_membership(body: dict, before: Membership | None, after: Membership) -> None:
    if before != after:
        listed = ", ".join(n.host.split(".")[0] for n in after.nodes) or "none"
        post_event(body, "Normal", "MembershipChanged",
                   f"Auto Discovery version {after.version}: {len(after.nodes)} node(s): {listed}")  # fmt: skip


def _publish(kube: Kube, body: dict, cache: build.Cache, pods: list[dict], zones: dict[str, str],
             conditions: list[Condition]) -> None:  # fmt: skip
    members = sorted((build.member(cache, p, zones) for p in pods), key=lambda m: m["name"])
    ready = sum(1 for m in members if m["ready"])
    fields = {"endpoint": build.configuration_endpoint(cache), "engineVersion": cache.version, "members": members}
    publish_status(kube, body, [*conditions, *build.availability(ready, cache.nodes)], fields,
                   Observed(desired=cache.nodes))  # fmt: skip
