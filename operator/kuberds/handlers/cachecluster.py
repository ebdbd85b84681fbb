"""CacheCluster: Memcached nodes with ElastiCache Auto Discovery, or Redis with a primary whose
endpoint follows its agents' leader Lease.

Thin: `reconcile` is the full pass (every object applied, drift corrected); `refresh` is what
a member's pod event needs — Memcached's published membership, and status; `correct_drift`
puts back a Service or NetworkPolicy edited or deleted by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.builders import cache as build
from kuberds.builders import cache_status, names
from kuberds.builders.meta import Owner
from kuberds.builders.status import TRUE, Condition, Observed
from kuberds.config import OperatorConfig
from kuberds.contract import PRIMARY, TLS_CA_FILE, TLS_FILES, environment
from kuberds.contract.environment import secret_text
from kuberds.contract.memcached import Membership
from kuberds.contract.redis import RedisAgentConfig
from kuberds.engines import cache_engine_for
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import certificates, coalesce, drift, ownership, restore
from kuberds.operations.secrets import (
    PASSPHRASE_KEYS,
    STORE_KEYS,
    Reference,
    first_problem,
    new_token,
    not_reconciled,
    reference_problem,
)
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
    if cache and cache.tls_secret and not cache.issues_certificate:  # replicas verify the primary with its CA
        return reference_problem(kube.get("Secret", namespace, cache.tls_secret), cache.tls_secret,
                                 "tls.certificateSecretName", (*TLS_FILES, TLS_CA_FILE))  # fmt: skip
    return None


def _issue_certificate(kube: Kube, body: dict, cache: build.Cache) -> None:
    """The cluster's CA, made once, and the members' certificate, (re)issued when missing,
    naming other endpoints, signed by another CA, or near its expiry."""
    namespace = cache.owner.namespace
    ca, served = (kube.get("Secret", namespace, name) for name in certificates.secret_names(cache))
    planned = certificates.plan(cache, ca, served, dt.datetime.now(dt.UTC), build.dns_names(cache))
    if planned.create_ca:
        kube.create_if_absent(planned.create_ca)
    if planned.served:
        kube.apply(planned.served)
        post_event(body, "Normal", "CertificateIssued", f"certificate {cache.tls_secret}: {planned.reason}")


@dataclass(frozen=True)
class _RestoreOnly:
    """What operations.restore reads of a spec: the restore and the engine."""

    restore: api.Restore
    engine: str


def _with_data_sources(kube: Kube, config: OperatorConfig, cache: build.Cache) -> tuple[build.Cache, Condition | None]:
    """The cluster with its snapshot store's CA and the snapshot it is restored from; or the
    Secret or snapshot that is missing. A restore is resolved once, before the StatefulSet
    exists; afterwards the plan first handed out is kept (the snapshot may go)."""
    namespace, store = cache.owner.namespace, cache.snapshot_store
    if store is not None:
        refs = [Reference(store.credentials_secret_name, "snapshots.objectStore.credentialsSecretName", STORE_KEYS)]
        if store.ca_secret_name:
            refs.append(Reference(store.ca_secret_name, "snapshots.objectStore.caSecretName", ("ca.crt",)))
        if cache.snapshot_key_secret and not cache.generates_snapshot_key:
            refs.append(Reference(cache.snapshot_key_secret, "snapshots.encryption.keySecretName", PASSPHRASE_KEYS))
        read = {ref.secret: kube.get("Secret", namespace, ref.secret) for ref in refs}
        problem = first_problem(refs, read)
        if problem:
            return cache, problem
        cache = replace(cache, store_ca=secret_text(read.get(store.ca_secret_name or ""), "ca.crt"))
    if cache.spec.restore is None:
        return cache, None
    made = kube.get("StatefulSet", namespace, names.stateful_set(cache.name))
    if made is not None:
        settings = kube.get("ConfigMap", namespace, names.settings(cache.name))
        resolved = restore.kept(settings, made, RedisAgentConfig.from_json)
    else:
        wanted = _RestoreOnly(api.Restore(from_snapshot=cache.spec.restore.from_snapshot), cache.spec.engine)
        seen = restore.read_source(kube, namespace, wanted, config)
        resolved = restore.resolve(wanted, seen, config, dt.datetime.now(dt.UTC))
    if resolved.problem:
        return cache, resolved.problem
    return replace(cache, restore=resolved.plan, restore_credentials=resolved.credentials,
                   restore_key_secret=resolved.key), None  # fmt: skip


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
    cache, problem = _with_data_sources(kube, config, cache)
    if problem:
        publish_status(kube, body, [problem, ACTIVE])
        raise kopf.TemporaryError(problem.message, delay=config.retry_seconds)  # a snapshot or Secret on its way
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
    if cache.issues_certificate:
        _issue_certificate(kube, body, cache)
    if cache.generates_snapshot_key:  # not owned (it outlives the cluster, as its snapshots do)
        kube.create_if_absent(build.snapshot_key(cache, new_token(32)))
    for obj in objects:
        ownership.confirm(cache.owner, kube.apply(obj))
    if discovery is not None:
        _said_membership(body, current, discovery)
    generation = body["metadata"]["generation"]
    applied = Condition("Reconciled", TRUE, "ObjectsApplied", f"objects for generation {generation}")
    _publish(kube, body, cache, pods, zones, [applied, ACTIVE, cache_status.tls_condition(cache),
                                              cache_status.snapshots_condition(cache)])  # fmt: skip


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
    members = sorted((cache_status.member(cache, p, zones) for p in pods), key=lambda m: m["name"])
    ready = sum(1 for m in members if m["ready"])
    primary = next((m["name"] for m in members if m["role"] == PRIMARY and m["ready"]), None)
    fields = {**build.endpoint_fields(cache), "engineVersion": cache.version, "members": members,
              "currentPrimary": primary, "authSecretName": cache.auth_secret}  # fmt: skip
    restored = cache_status.restored_condition(cache, primary, (body.get("status") or {}).get("conditions") or [])
    publish_status(kube, body, [*conditions, *cache_status.availability(ready, cache.nodes), *restored], fields,
                   Observed(desired=cache.nodes))  # fmt: skip
