"""CacheCluster: Memcached nodes with ElastiCache Auto Discovery, or Redis with a primary whose
endpoint follows its agents' leader Lease.

Thin: `reconcile` is the full pass (every object applied, drift corrected); `refresh` is what
a member's pod event needs — Memcached's published membership, and status; `correct_drift`
puts back a Service or NetworkPolicy edited or deleted by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.builders import cache as build
from kuberds.builders import names
from kuberds.builders.meta import Owner
from kuberds.builders.status import TRUE, Condition, Observed
from kuberds.config import OperatorConfig
from kuberds.contract import PRIMARY, environment
from kuberds.contract.memcached import Membership
from kuberds.engines import cache_engine_for
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import coalesce, drift, ownership
from kuberds.operations.secrets import new_token, not_reconciled, reference_problem
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
    if engine.spec_problems(spec):
        return None
    return build.Cache(Owner.of(body), spec, engine, config)


def _problem(kube: Kube, spec: api.CacheClusterSpec, namespace: str, cache: build.Cache | None) -> Condition | None:
    engine = cache_engine_for(spec.engine)
    if engine is None:
        return not_reconciled("EngineNotSupported", f"engine {spec.engine} is accepted by the API but its data plane "
                              "is not available yet")  # fmt: skip
    refused = engine.spec_problems(spec)
    if refused:
        reason = "InvalidParameter" if refused[0].startswith("parameters.") else "InvalidAccessRule"
        return not_reconciled(reason, "; ".join(refused))
    named = engine.secrets(spec)
    if cache and cache.auth_secret and not cache.generates_auth:
        named = [(cache.auth_secret, "auth.secretName"), *named]
    for secret, field in named:
        problem = reference_problem(kube.get("Secret", namespace, secret), secret, field,
                                    (environment.CACHE_PASSWORD.key,))  # fmt: skip
        if problem:
            return problem
    return None


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
    cache = _cache(config, body)
    problem = _problem(kube, spec, body["metadata"]["namespace"], cache)
    if problem:
        publish_status(kube, body, [problem, ACTIVE])
        return  # nothing to retry until the spec or the Secret changes: the resync looks again
    current, read_at, discovery = None, None, None
    if cache.engine.publishes_membership:
        current, read_at = _current_membership(kube, cache)
        discovery = build.membership(cache, pods, current)
    objects = build.cache_objects(cache, discovery, read_at)
    namespace = cache.owner.namespace
    generated = [build.auth_secret(cache, "")] if cache.generates_auth else []
    generated += [build.admin_secret(cache, "")] if cache.auth_secret else []
    holders = {key: kube.get(key[0], namespace, key[2])
               for key in ownership.unconfirmed(cache.owner, [*generated, *objects])}  # fmt: skip
    taken = ownership.conflict(cache.owner, [*generated, *objects], holders)
    if taken:
        publish_status(kube, body, [taken, ACTIVE])
        raise kopf.TemporaryError(taken.message, delay=config.retry_seconds)
    for made in generated:  # passwords: made once, never overwritten
        secret, _ = kube.create_if_absent(made | {"stringData": {k: new_token(24) for k in made["stringData"]}})
        ownership.confirm(cache.owner, secret)
    for obj in objects:
        ownership.confirm(cache.owner, kube.apply(obj))
    if discovery is not None:
        _said_membership(body, current, discovery)
    generation = body["metadata"]["generation"]
    applied = Condition("Reconciled", TRUE, "ObjectsApplied", f"objects for generation {generation}")
    _publish(
        kube, body, cache, pods, zones, [applied, ACTIVE, build.tls_condition(cache), build.snapshots_condition(cache)]
    )


@dataclass(frozen=True)
class Seen:
    """What the indexes hold about one cluster when a refresh runs."""

    body: dict | None  # as last seen; may lag behind a status write (a 409 then re-reads)
    pods: list[dict]
    zones: dict[str, str]


def refresh(kube: Kube, config: OperatorConfig, key: tuple[str, str], read: Callable[[], Seen]) -> str:
    """A member's pod changed: the membership clients discover (Memcached), and status.
    `key` is (namespace, name); refreshes of one cluster run one at a time (coalesced)."""

    def once() -> str:
        seen = read()
        if seen.body is None:
            coalesce.forget((KIND, *key))
            return "nothing: the cluster is gone"
        return _refresh_once(kube, config, seen)

    return coalesce.run((KIND, *key), once)


def _refresh_once(kube: Kube, config: OperatorConfig, seen: Seen) -> str:
    body = seen.body
    cache = _cache(config, body)
    if cache is None:
        return "nothing: paused, unsupported, refused or deleting"
    said = "status"
    if cache.engine.publishes_membership:
        current, read_at = _current_membership(kube, cache)
        if current is None:
            return "nothing: the full pass has not made the discovery ConfigMap yet"
        discovery = build.membership(cache, seen.pods, current)
        if discovery != current:
            kube.apply(build.discovery_config_map(cache, discovery, read_at))
            _said_membership(body, current, discovery)
        said = f"discovery version {discovery.version}, {len(discovery.nodes)} nodes"
    _publish(kube, body, cache, seen.pods, seen.zones, [])
    return said


def correct_drift(kube: Kube, config: OperatorConfig, body: dict, event: dict, kind: str, name: str) -> str:
    """A Service or NetworkPolicy of the cluster changed or vanished: put it back."""
    cache = _cache(config, body)
    objects = build.cache_objects(cache, Membership(0, ())) if cache else None  # routing objects only are read
    return drift.correct_child(kube, body, event, kind, name, objects)


def _said_membership(body: dict, before: Membership | None, after: Membership) -> None:
    if before != after:
        listed = ", ".join(n.host.split(".")[0] for n in after.nodes) or "none"
        post_event(body, "Normal", "MembershipChanged",
                   f"Auto Discovery version {after.version}: {len(after.nodes)} node(s): {listed}")  # fmt: skip


def _publish(kube: Kube, body: dict, cache: build.Cache, pods: list[dict], zones: dict[str, str],
             conditions: list[Condition]) -> None:  # fmt: skip
    members = sorted((build.member(cache, p, zones) for p in pods), key=lambda m: m["name"])
    ready = sum(1 for m in members if m["ready"])
    primary = next((m["name"] for m in members if m["role"] == PRIMARY and m["ready"]), None)
    fields = {**build.endpoint_fields(cache), "engineVersion": cache.version, "members": members,
              "currentPrimary": primary, "authSecretName": cache.auth_secret}  # fmt: skip
    publish_status(kube, body, [*conditions, *build.availability(ready, cache.nodes)], fields,
                   Observed(desired=cache.nodes))  # fmt: skip
