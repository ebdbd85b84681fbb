"""One reconcile pass of a server kind, in three plain steps:

    observe  every read the pass needs, into one value (Seen)
    build    pure: the objects to create and apply, the volume patches, the conditions (Plan)
    apply    the writes, the Events, and the status

A kind supplies what differs (ServerKind: how its spec becomes a Server, and which objects
that Server has); the rest — references to users' Secrets, generated credentials, the
certificate, the restore source, volume growth — is the same for every server kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import kopf

from kuberds import engines
from kuberds.api import v1alpha1 as api
from kuberds.builders import names
from kuberds.builders import secrets as secret_build
from kuberds.builders import settings as settings_build
from kuberds.builders.meta import Owner
from kuberds.builders.server import SecretRefs, Server
from kuberds.builders.statefulset import claim_template_size, with_claim_size
from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import environment
from kuberds.contract.settings import BackupPlan, RestorePlan
from kuberds.engines import Engine, engine_for
from kuberds.kube import Kube
from kuberds.operations import certificates, claim_template, ownership, restore, storage
from kuberds.operations.secrets import first_problem, new_token, not_reconciled, references
from kuberds.operations.server_status import publish_server_status
from kuberds.operations.status import post_event, publish_status
from kuberds.quantity import to_bytes

ACTIVE = Condition("Paused", FALSE, "AutomationActive")
# What a proxy is made of (builders.proxy), all named after it, in deletion order.
# The Deployment goes last: a removal is noticed by it, so a pass that stops halfway (an API
# error) leaves it there for the next pass to finish, rather than leaving the rest behind.
PROXY_KINDS = ("PodDisruptionBudget", "Service", "NetworkPolicy", "ConfigMap", "Deployment")


class ServerKind(Protocol):
    """What a server kind gives the shared pass."""

    def server(self, owner: Owner, spec: api.ServerSpec, engine: Engine, config: OperatorConfig, *, claim_size: str,
               backup: BackupPlan | None = None, restore: RestorePlan | None = None,
               secrets: SecretRefs | None = None) -> Server: ...  # fmt: skip

    def objects(self, server: Server) -> list[dict]: ...


@dataclass(frozen=True)
class Seen:
    """Everything one pass read."""

    body: dict
    spec: api.ServerSpec
    now: datetime
    stateful_set: dict | None = None
    secrets: dict[str, dict | None] = field(default_factory=dict)  # every Secret looked at, by name
    source: restore.RestoreSeen | None = None  # the restore source, before the StatefulSet exists
    settings: dict | None = None  # afterwards: the settings ConfigMap handed out (kept restore)
    # Read only when the volumes must grow, or before the StatefulSet exists (earlier volumes).
    claims: list[dict] = field(default_factory=list)
    storage_classes: dict[str, dict | None] = field(default_factory=dict)
    # What holds the names of the server's objects, for those not yet known to be its own.
    holders: dict[ownership.Key, dict | None] = field(default_factory=dict)
    # The Deployments of proxies the spec does not ask for (any left from before go).
    leftover_proxies: dict[str, dict | None] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.body["metadata"]["namespace"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def status(self) -> dict:
        return self.body.get("status") or {}


@dataclass
class Plan:
    """What a pass writes. With `problem`, nothing: the condition is published and the pass
    is retried after `retry_in` seconds."""

    problem: Condition | None = None
    retry_in: float = 30
    server: Server | None = None
    create: list[dict] = field(default_factory=list)  # made once, never overwritten
    apply: list[dict] = field(default_factory=list)  # server-side applied (drift corrected)
    claim_patches: list[tuple[str, dict]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) of the server's own
    secret_patches: list[tuple[str, dict]] = field(default_factory=list)  # keys added, none changed
    storage: Condition | None = None  # StorageResized when known before the patches
    storage_fields: dict | None = None  # status.storage additions (lastGrowTime once claims are asked)
    # The claim template is smaller than the volumes: the StatefulSet is re-created (pods kept).
    recreate_stateful_set: dict | None = None
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message), Normal
    conditions: list[Condition] = field(default_factory=list)


# ---------------------------------------------------------------- observe


def claim_size(spec: api.ServerSpec, stateful_set: dict | None, status: dict) -> str:
    """Claim templates cannot change once the StatefulSet exists: its size is the claims'
    (until the pass makes it again for volumes grown since: operations.claim_template)."""
    return claim_template_size(stateful_set) if stateful_set else storage.wanted_size(spec.storage.size, status)


def generated_secrets(name: str, spec: api.ServerSpec, config: OperatorConfig) -> list[str]:
    """The Secrets kuberds generates for this server, as its spec is now."""
    generated = [] if spec.master_user_secret_name else [names.master_secret(name)]
    generated.append(names.agent_credentials(name))
    encryption = spec.backup.encryption
    if settings_build.object_store(spec, config) and encryption.enabled and not encryption.key_secret_name:
        generated.append(names.backup_key(name))
    if spec.tls.enabled and not spec.tls.certificate_secret_name:
        generated += [names.ca_secret(name), names.tls_secret(name)]
    return generated


def secrets_to_read(name: str, spec: api.ServerSpec, config: OperatorConfig) -> list[str]:
    """Users' Secrets the spec names, and the ones kuberds generates for the server."""
    refs = [ref.secret for ref in references(spec, config)]
    return list(dict.fromkeys([*refs, *generated_secrets(name, spec, config)]))


def observe(kube: Kube, config: OperatorConfig, kind: ServerKind, body: dict, spec: api.ServerSpec) -> Seen:
    seen = Seen(body, spec, datetime.now(UTC))
    if engine_for(spec.engine) is None:
        return seen
    namespace, name = seen.namespace, seen.name
    stateful_set = claim_template.complete(kube, kube.get("StatefulSet", namespace, names.stateful_set(name)),
                                           namespace, names.stateful_set(name))  # fmt: skip
    if stateful_set and stateful_set["metadata"].get("deletionTimestamp"):
        raise kopf.TemporaryError(f"waiting for StatefulSet {stateful_set['metadata']['name']} to go", delay=1)
    secrets = {s: kube.get("Secret", namespace, s) for s in secrets_to_read(name, spec, config)}
    known = {("Secret", namespace, s): secret for s, secret in secrets.items()}
    known[("StatefulSet", namespace, names.stateful_set(name))] = stateful_set
    objects = kind.objects(known_server(kind, body, spec, config, stateful_set))
    holders = {key: known[key] if key in known else kube.get(key[0], namespace, key[2])
               for key in ownership.unconfirmed(Owner.of(body), objects)}  # fmt: skip
    source, settings = None, None
    if spec.restore and stateful_set is None:
        source = restore.read_source(kube, namespace, spec, config)
    elif spec.restore:
        settings = kube.get("ConfigMap", namespace, names.settings(name))
    claims, classes = [], {}
    wanted = storage.wanted_size(spec.storage.size, body.get("status") or {})
    selector = Owner.of(body).selector("database")
    if stateful_set is None:  # volumes left by an earlier server of this name, if any
        claims = kube.list("PersistentVolumeClaim", namespace, selector)
    elif to_bytes(wanted) > to_bytes(claim_size(spec, stateful_set, body.get("status") or {})):
        claims = kube.list("PersistentVolumeClaim", namespace, selector)
        classes = {c: kube.get("StorageClass", None, c) for c in storage.classes_to_read(claims, wanted)}
    leftover = {p: kube.get("Deployment", namespace, p) for p in unwanted_proxies(name, spec)}
    return Seen(body, spec, seen.now, stateful_set, secrets, source, settings, claims, classes, holders, leftover)


def unwanted_proxies(name: str, spec: api.ServerSpec) -> list[str]:
    """The proxies (by name) this spec does not ask for."""
    wanted = {names.proxy(name): spec.proxy.enabled, names.reader_proxy(name): spec.proxy.enabled
              and spec.proxy.reader_endpoint}  # fmt: skip
    return [proxy for proxy, want in wanted.items() if not want]


# ---------------------------------------------------------------- build


def known_server(kind: ServerKind, body: dict, spec: api.ServerSpec, config: OperatorConfig,
                 stateful_set: dict | None) -> Server:  # fmt: skip
    """The server as far as it is known without reading anything: for status refreshes and
    drift, which never write agent.json or the pod template (no CA bundle, no restore)."""
    owner, store = Owner.of(body), settings_build.object_store(spec, config)
    return kind.server(owner, spec, engine_for(spec.engine), config,
                       claim_size=claim_size(spec, stateful_set, body.get("status") or {}),
                       backup=settings_build.backup_plan(owner, spec, store))  # fmt: skip


def engine_feature_problem(engine: Engine, spec: api.ServerSpec, kind: str) -> str:
    """What the spec asks of an engine that does not offer it, naming the field ("" when none)."""
    if kind == "DBCluster" and not engine.clusters:
        return (f"engine {engine.name} is offered as a DBInstance (multiAZ: a primary and a standby with every "
                "commit), not yet as a DBCluster")  # fmt: skip
    if not engine.backups and spec.backup.object_store is not None:
        return f"backup.objectStore: backups of {engine.name} to object storage are not offered yet"
    if not engine.backups and spec.restore is not None:
        return f"restore: {engine.name} servers cannot be restored from backups yet"
    return ""


def _reference_problem(seen: Seen, config: OperatorConfig) -> Condition | None:
    """What only the operator can judge: the engine, parameter values, Secrets the spec names."""
    spec = seen.spec
    engine = engine_for(spec.engine)
    if engine is None:
        why = engines.info(spec.engine).not_offered or "its data plane is not available yet"
        return not_reconciled("EngineNotSupported", f"engine {spec.engine} is accepted by the API but {why}")
    unsupported = engine_feature_problem(engine, spec, seen.body.get("kind", ""))
    if unsupported:
        return not_reconciled("EngineNotSupported", unsupported)
    refused = engine.parameter_problems(spec.parameters)
    if refused:
        return not_reconciled("InvalidParameter", "; ".join(refused))
    return first_problem(references(spec, config), seen.secrets)


def _restore(seen: Seen, config: OperatorConfig) -> restore.Restore:
    """Resolved once, before the StatefulSet exists; afterwards the plan handed out is kept."""
    if not seen.spec.restore:
        return restore.Restore()
    if seen.stateful_set is None:
        return restore.resolve(seen.spec, seen.source, config, seen.now)
    return restore.kept(seen.settings, seen.stateful_set)


def build(seen: Seen, config: OperatorConfig, kind: ServerKind, token: Callable[[int], str] = new_token) -> Plan:
    """The pass's writes, from what it read. Pure but for `token` (random passwords)."""
    spec = seen.spec
    problem = _reference_problem(seen, config) or storage.earlier_volumes(seen.body, seen.stateful_set, seen.claims)
    if problem:
        return Plan(problem=problem, retry_in=config.retry_seconds)
    source = _restore(seen, config)
    if source.problem:
        return Plan(problem=source.problem, retry_in=15)
    store = settings_build.object_store(spec, config)
    ca_bundle, _ = restore.store_ca(seen.secrets.get(store.ca_secret_name) if store and store.ca_secret_name
                                    else None, store, "backup.objectStore.caSecretName")  # fmt: skip
    owner, engine = Owner.of(seen.body), engine_for(spec.engine)
    key = settings_build.backup_key_secret(seen.name, spec) if store else None
    server = kind.server(
        owner, spec, engine, config, claim_size=claim_size(spec, seen.stateful_set, seen.status),
        backup=settings_build.backup_plan(owner, spec, store, ca_bundle), restore=source.plan,
        secrets=SecretRefs(store_credentials=store.credentials_secret_name if store else None, backup_key=key,
                           restore_store_credentials=source.credentials, restore_key=source.key),
    )  # fmt: skip
    generation = seen.body["metadata"]["generation"]
    applied = Condition("Reconciled", TRUE, "ObjectsApplied", f"objects for generation {generation}")
    plan = Plan(server=server, conditions=[applied, ACTIVE])
    _generated_secrets(seen, server, plan, token)
    if server.issues_certificate:
        ca_name, tls_name = certificates.secret_names(server)
        certificate = certificates.plan(server, seen.secrets.get(ca_name), seen.secrets.get(tls_name), seen.now)
        plan.create.extend([certificate.create_ca] if certificate.create_ca else [])
        if certificate.served:
            plan.apply.append(certificate.served)
            plan.events.append(("CertificateIssued", f"served certificate in Secret {tls_name} issued: "
                                                     f"{certificate.reason}"))  # fmt: skip
    plan.apply.extend(kind.objects(server))
    for proxy, deployment in seen.leftover_proxies.items():
        if deployment and ownership.belongs(deployment, owner):
            plan.delete.extend((k, proxy) for k in PROXY_KINDS)
            plan.events.append(("ProxyRemoved", f"the spec no longer asks for proxy {proxy}: its objects are deleted"))
    # The generated Secrets that exist were read anyway: they too must be the server's own.
    generated = {("Secret", seen.namespace, s): seen.secrets.get(s) for s in generated_secrets(seen.name, spec, config)}
    held = [{"kind": k, "metadata": {"namespace": ns, "name": n}} for (k, ns, n), obj in generated.items() if obj]
    taken = ownership.conflict(owner, [*plan.create, *plan.apply, *held], {**seen.holders, **generated})
    if taken:
        return Plan(problem=taken, retry_in=config.retry_seconds)
    if seen.claims and seen.stateful_set:
        wanted = storage.wanted_size(spec.storage.size, seen.status)
        growth = storage.plan(wanted, seen.claims, seen.storage_classes)
        plan.claim_patches.extend(growth.patches)
        if growth.patches:
            plan.storage_fields = {"lastGrowTime": seen.now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        # Asked: the claims' own events bring the refreshes that say Resizing, then Resized
        # (a verdict from the claims as read here could land after theirs and stick).
        plan.storage = growth.condition
        if growth.condition is None and to_bytes(claim_template_size(seen.stateful_set)) < to_bytes(wanted):
            # Every claim is asked for the size: a member made from now on gets it too.
            plan.recreate_stateful_set = with_claim_size(seen.stateful_set, wanted)
    return plan


def _generated_secrets(seen: Seen, server: Server, plan: Plan, token: Callable[[int], str]) -> None:
    """The credentials kuberds generates, each made once."""
    spec, name = seen.spec, seen.name
    if not spec.master_user_secret_name and seen.secrets.get(server.master_secret) is None:
        plan.create.append(secret_build.master_secret(server, token(24)))
    credentials = seen.secrets.get(names.agent_credentials(name))
    if credentials is None:
        passwords = [token(24) for _ in environment.GENERATED_CREDENTIALS]
        plan.create.append(secret_build.agent_credentials(server, passwords))
    elif missing := secret_build.missing_credential_keys(credentials):
        # Added, never changed: pods read the new keys when they next start.
        backfill = {"stringData": {key: token(24) for key in missing}}
        plan.secret_patches.append((names.agent_credentials(name), backfill))
    encryption = spec.backup.encryption
    generated_key = server.backup and encryption.enabled and not encryption.key_secret_name
    if generated_key and seen.secrets.get(names.backup_key(name)) is None:
        plan.create.append(secret_build.backup_key(server, token(32)))


# ---------------------------------------------------------------- apply


def apply(kube: Kube, body: dict, plan: Plan, pods: list[dict], zones: dict[str, str]) -> None:
    if plan.problem:
        publish_status(kube, body, [plan.problem, ACTIVE, *plan.conditions])
        raise kopf.TemporaryError(plan.problem.message, delay=plan.retry_in)
    owner = Owner.of(body)
    for obj in plan.create:
        ownership.confirm(owner, kube.create(obj))
    for obj in plan.apply:
        ownership.confirm(owner, kube.apply(obj))
    for kind, name in plan.delete:
        kube.delete(kind, body["metadata"]["namespace"], name)
    for secret, patch in plan.secret_patches:
        kube.merge_patch("Secret", body["metadata"]["namespace"], secret, patch)
    for reason, message in plan.events:
        post_event(body, "Normal", reason, message=message)
    conditions = list(plan.conditions)
    resized, refused = plan.storage, False
    for claim, patch in plan.claim_patches:
        try:
            kube.merge_patch("PersistentVolumeClaim", body["metadata"]["namespace"], claim, patch)
        except kopf.PermanentError as refusal:
            resized, refused = storage.refused(str(refusal)), True
            break
    if resized:
        conditions.append(resized)
    publish_server_status(kube, body, plan.server, pods, zones, conditions,
                          storage_updates=None if refused else plan.storage_fields)  # fmt: skip
    if plan.recreate_stateful_set and not refused:
        claim_template.replace(kube, body, plan.recreate_stateful_set)
        raise kopf.TemporaryError("re-creating the StatefulSet with the volumes' size", delay=1)


def publish_paused(kube: Kube, body: dict) -> None:
    paused = Condition("Paused", TRUE, "AutomationPaused", "spec.automationPaused is true: kuberds changes nothing")
    publish_status(kube, body, [paused])


def run(kube: Kube, config: OperatorConfig, kind: ServerKind, body: dict, spec: api.ServerSpec, pods: list[dict],
        zones: dict[str, str], conditions: list[Condition] | None = None) -> None:  # fmt: skip
    """A whole pass: create or correct every object of the server, then publish status (with
    the kind's own `conditions`, judged before the pass)."""
    if spec.automation_paused:
        publish_paused(kube, body)
        return
    seen = observe(kube, config, kind, body, spec)
    plan = build(seen, config, kind)
    plan.conditions.extend(conditions or [])
    apply(kube, body, plan, pods, zones)
