"""DBInstance handlers: read the spec, call the builders, ensure the objects, set status.

Called from kuberds.triggers; each function is one Kopf trigger's work. Waiting is
kopf.TemporaryError(delay=…), an invalid spec is kopf.PermanentError, and nothing here
sleeps.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kopf

from kuberds.agent import client as agents
from kuberds.agent.config import AgentConfig, RestorePlan
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec, ObjectStore
from kuberds.builders import agent as agent_build
from kuberds.builders import certificates
from kuberds.builders import server as build
from kuberds.builders import snapshot as snapshot_build
from kuberds.builders.meta import AGENT_STATUS_ANNOTATION, PRIMARY, Owner
from kuberds.builders.status import (
    FALSE,
    TRUE,
    Condition,
    Member,
    Observed,
    availability,
    handover,
    member_from_pod,
    next_pod_to_roll,
    storage_condition,
)
from kuberds.config import OperatorConfig
from kuberds.engines import Engine, engine_for
from kuberds.handlers.common import now, parse_time, publish_status
from kuberds.kube import Kube
from kuberds.quantity import to_bytes

KIND = "DBInstance"
log = logging.getLogger("kuberds")


def owner_of_body(body: dict) -> Owner:
    meta = body["metadata"]
    return Owner(KIND, meta["name"], meta["namespace"], meta["uid"])


def spec_of(body: dict) -> DBInstanceSpec:
    try:
        return parse(DBInstanceSpec, body.get("spec"))
    except (ValueError, TypeError) as error:  # the schema normally refuses this first
        raise kopf.PermanentError(f"invalid spec: {error}") from error


def _not_reconciled(reason: str, message: str) -> Condition:
    return Condition("Reconciled", FALSE, reason, message)


def _problem(kube: Kube, body: dict, spec: DBInstanceSpec) -> Condition | None:
    """What only the operator can judge: references to things that must exist."""
    namespace = body["metadata"]["namespace"]
    if engine_for(spec.engine) is None:
        return _not_reconciled(
            "EngineNotSupported", f"engine {spec.engine} is accepted by the API but its data plane is not available yet"
        )
    if spec.master_user_secret_name:
        name = spec.master_user_secret_name
        secret = kube.get("Secret", namespace, name)
        if secret is None:
            return _not_reconciled("SecretNotFound", f"Secret {name} (masterUserSecretName) does not exist")
        if "password" not in (secret.get("data") or {}):
            return _not_reconciled("SecretInvalid", f"Secret {name} has no key 'password'")
    tls = spec.tls
    if tls.enabled and tls.certificate_secret_name:
        name = tls.certificate_secret_name
        secret = kube.get("Secret", namespace, name)
        if secret is None:
            return _not_reconciled("SecretNotFound", f"Secret {name} (tls.certificateSecretName) does not exist")
        missing = {"tls.crt", "tls.key"} - set(secret.get("data") or {})
        if missing:
            return _not_reconciled("SecretInvalid", f"Secret {name} (tls.certificateSecretName) has no key "
                                                    f"{', '.join(sorted(missing))}")  # fmt: skip
    return None


def store_ca(kube: Kube, namespace: str, store: ObjectStore | None, where: str) -> tuple[str | None, Condition | None]:
    """The PEM in the store's caSecretName (key ca.crt), read once per pass; None when it
    names none. A named Secret that is missing, or has no ca.crt, is the condition instead."""
    if store is None or not store.ca_secret_name:
        return None, None
    bundle = _secret_text(kube.get("Secret", namespace, store.ca_secret_name), "ca.crt")
    if bundle:
        return bundle, None
    return None, _not_reconciled("SecretNotFound", f"Secret {store.ca_secret_name} ({where}) does not exist or "
                                                   "has no key ca.crt")  # fmt: skip


def object_store(spec: DBInstanceSpec, config: OperatorConfig) -> ObjectStore | None:
    if spec.backup.object_store is not None:
        return spec.backup.object_store
    return parse(ObjectStore, config.default_object_store) if config.default_object_store else None


def key_secret(name: str, spec: DBInstanceSpec) -> str | None:
    encryption = spec.backup.encryption
    return (encryption.key_secret_name or f"{name}-backup-key") if encryption.enabled else None


@dataclass(frozen=True)
class Restore:
    plan: RestorePlan | None = None
    credentials: str | None = None
    key: str | None = None
    problem: Condition | None = None


def restore_source(kube: Kube, body: dict, spec: DBInstanceSpec, config: OperatorConfig) -> Restore:
    """Where a restore reads from: the source server's repository, with its secrets."""
    restore = spec.restore
    if restore is None:
        return Restore()
    namespace = body["metadata"]["namespace"]
    snapshot_set, target = None, None
    if restore.from_snapshot:
        snapshot = kube.get("DBSnapshot", namespace, restore.from_snapshot)
        if snapshot is None:
            missing = f"DBSnapshot {restore.from_snapshot} (restore.fromSnapshot) does not exist"
            return Restore(problem=_not_reconciled("SnapshotNotFound", missing))
        snapshot_set = (snapshot.get("status") or {}).get("backupID")
        if not snapshot_set or (snapshot.get("status") or {}).get("phase") != "Available":
            waiting = f"DBSnapshot {restore.from_snapshot} is not Available yet"
            return Restore(problem=_not_reconciled("SnapshotNotAvailable", waiting))
        source_name = ((snapshot.get("spec") or {}).get("source") or {}).get("dbInstance")
    else:
        source_name = restore.point_in_time.source
        target = restore.point_in_time.time  # None: latest
    source = kube.get(KIND, namespace, source_name) if source_name else None
    if source is None and restore.point_in_time:
        return Restore(
            problem=_not_reconciled(
                "RestoreSourceNotFound", f"{source_name} (restore.pointInTime.source) is not a DBInstance here"
            )
        )
    if source is None:
        return Restore(problem=_not_reconciled("RestoreSourceGone",
                       f"restoring needs the source server {source_name} (its repository and keys); "
                       "restoring from a deleted server's snapshot is not supported yet"))  # fmt: skip
    source_spec = spec_of(source)
    store = object_store(source_spec, config)
    if store is None:
        return Restore(problem=_not_reconciled("RestoreSourceHasNoBackups", f"{source_name} has no object store"))
    ca_bundle, problem = store_ca(kube, namespace, store, f"the object store of {source_name}")
    if problem:
        return Restore(problem=problem)
    repository = agent_build.repository(owner_of_body(source), store, source_spec.backup.encryption.enabled,
                                        ca_bundle)  # fmt: skip
    plan = RestorePlan(repository=repository, snapshot_set=snapshot_set, target_time=target)
    return Restore(plan, store.credentials_secret_name, key_secret(source_name, source_spec))


def kept_restore(kube: Kube, body: dict, stateful_set: dict) -> Restore:
    """The restore plan and secret names as the operator first handed them out."""
    meta = body["metadata"]
    settings = kube.get("ConfigMap", meta["namespace"], f"{meta['name']}-settings") or {}
    text = (settings.get("data") or {}).get("agent.json")
    plan = AgentConfig.from_json(text).restore if text else None
    env = stateful_set["spec"]["template"]["spec"]["containers"][0].get("env") or []
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    return Restore(plan, refs.get("KUBERDS_RESTORE_ACCESS_KEY_ID"), refs.get("KUBERDS_RESTORE_CIPHER_PASS"))


def _server(body: dict, spec: DBInstanceSpec, config: OperatorConfig, existing_sts: dict | None,
            restore: Restore | None = None, ca_bundle: str | None = None) -> build.Server:  # fmt: skip
    """`ca_bundle`: the object store's private CA, read by the full pass (the only one that
    writes agent.json); other callers build objects other than the settings ConfigMap."""
    claim_size = spec.storage.size
    if existing_sts:  # claim templates cannot change once the StatefulSet exists
        claim_size = existing_sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    name = body["metadata"]["name"]
    owner = owner_of_body(body)
    store = object_store(spec, config)
    restore = restore or Restore()
    return build.Server(
        owner=owner,
        spec=spec,
        engine=engine_for(spec.engine),
        config=config,
        claim_size=claim_size,
        master_secret=spec.master_user_secret_name or f"{name}-master",
        backup=agent_build.backup_plan(owner, spec, store, ca_bundle),
        restore=restore.plan,
        secrets=build.SecretRefs(
            store_credentials=store.credentials_secret_name if store else None,
            backup_key=key_secret(name, spec) if store else None,
            restore_store_credentials=restore.credentials,
            restore_key=restore.key,
        ),
    )


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str]) -> None:
    """Create or correct every object of the instance, then publish status."""
    spec = spec_of(body)
    if spec.automation_paused:
        paused = Condition("Paused", TRUE, "AutomationPaused", "spec.automationPaused is true: kuberds changes nothing")
        publish_status(kube, body, [paused])
        return
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    ca_bundle, store_problem = store_ca(kube, namespace, object_store(spec, config), "backup.objectStore.caSecretName")
    problem = _problem(kube, body, spec) or store_problem
    if problem:
        publish_status(kube, body, [problem, Condition("Paused", FALSE, "AutomationActive")])
        raise kopf.TemporaryError(problem.message, delay=30)

    existing = kube.get("StatefulSet", namespace, name)
    # The source is resolved once, before the server exists; afterwards the plan that was
    # handed to the agent is kept (Patroni uses it only while the cluster is uninitialized,
    # and a source deleted later must neither block nor change anything).
    restore = None
    if spec.restore:
        restore = restore_source(kube, body, spec, config) if existing is None else kept_restore(kube, body, existing)
    if restore and restore.problem:
        publish_status(kube, body, [restore.problem, Condition("Paused", FALSE, "AutomationActive")])
        raise kopf.TemporaryError(restore.problem.message, delay=15)
    server = _server(body, spec, config, existing, restore, ca_bundle)
    if not spec.master_user_secret_name:
        kube.create_if_absent(build.master_secret(server, secrets.token_urlsafe(24)))
    kube.create_if_absent(build.agent_credentials(server, *(secrets.token_urlsafe(24) for _ in range(3))))
    if server.backup and spec.backup.encryption.enabled and not spec.backup.encryption.key_secret_name:
        kube.create_if_absent(build.backup_key(server, secrets.token_urlsafe(32)))
    if server.issues_certificate:
        ensure_certificate(kube, body, server)
    for obj in build.server_objects(server):
        kube.apply(obj)
    conditions = [
        Condition("Reconciled", TRUE, "ObjectsApplied", f"objects for generation {body['metadata']['generation']}"),
        Condition("Paused", FALSE, "AutomationActive"),
    ]
    if to_bytes(spec.storage.size) > to_bytes(server.claim_size):
        conditions.append(_grow_volumes(kube, server))
    publish_server_status(kube, body, server, pods, zones, conditions)


def _secret_text(secret: dict | None, key: str) -> str | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


def ensure_certificate(kube: Kube, body: dict, server: build.Server) -> None:
    """The server's CA, made once; the served certificate, (re)issued when it is missing,
    names other endpoints, was signed by another CA, or nears its expiry (the resync timer
    brings every server here regularly)."""
    namespace, moment = server.owner.namespace, datetime.now(UTC)
    ca_secret = kube.get("Secret", namespace, f"{server.name}-ca")
    if ca_secret is None:
        ca = certificates.new_ca(f"kuberds CA {server.name}.{namespace}", moment)
        ca_secret, _ = kube.create_if_absent(build.ca_secret(server, ca))
    ca = certificates.KeyPair(_secret_text(ca_secret, "ca.crt") or "", _secret_text(ca_secret, "ca.key") or "")
    served = kube.get("Secret", namespace, f"{server.name}-tls")
    names = build.endpoint_names(server)
    reason = certificates.reissue_reason(_secret_text(served, "tls.crt"), ca.certificate, names, moment)
    if reason is None and _secret_text(served, "ca.crt") == ca.certificate:
        return
    kube.apply(build.tls_secret(server, ca.certificate, certificates.server_certificate(ca, names, moment)))
    why = reason or "the CA it is published with changed"
    kopf.event(body, type="Normal", reason="CertificateIssued",
               message=f"served certificate in Secret {server.name}-tls issued: {why}")  # fmt: skip


def _grow_volumes(kube: Kube, server: build.Server) -> Condition:
    """Asks for the larger size on each claim the StorageClass can expand."""
    wanted = server.spec.storage.size
    claims = kube.list("PersistentVolumeClaim", server.owner.namespace, server.selector())
    small = [c for c in claims if to_bytes(c["spec"]["resources"]["requests"]["storage"]) < to_bytes(wanted)]
    expandable: dict[str | None, bool] = {None: False}  # StorageClass name → can it grow volumes?
    for claim in small:
        class_name = claim["spec"].get("storageClassName")
        if class_name not in expandable:
            storage_class = kube.get("StorageClass", None, class_name) or {}
            expandable[class_name] = bool(storage_class.get("allowVolumeExpansion"))
        if not expandable[class_name]:
            return Condition("StorageResized", FALSE, "ExpansionNotSupported",
                             f"StorageClass {class_name or '(none)'} of {claim['metadata']['name']} cannot expand "
                             f"volumes; they stay at {claim['spec']['resources']['requests']['storage']}")  # fmt: skip
        try:
            kube.merge_patch("PersistentVolumeClaim", server.owner.namespace, claim["metadata"]["name"],
                             {"spec": {"resources": {"requests": {"storage": wanted}}}})  # fmt: skip
        except kopf.PermanentError as refused:
            return Condition("StorageResized", FALSE, "ResizeRefused", str(refused))
    return storage_condition(wanted, claims)[0]


def publish_server_status(kube: Kube, body: dict, server: build.Server, pods: list[dict], zones: dict[str, str],
                          conditions: list[Condition], allocated: str | None = None) -> dict:  # fmt: skip
    members = sorted((member_from_pod(p, zones) for p in pods), key=lambda m: m.name)
    status = body.get("status") or {}
    observed = Observed(desired=server.replicas, members=members, previous_phase=status.get("phase"))
    primary = next((m.name for m in members if m.role == PRIMARY and m.in_service), None)
    allocated = allocated or (status.get("storage") or {}).get("allocated")
    fields = {
        "engineVersion": server.version,
        "endpoint": build.writer_endpoint(server),
        "readerEndpoint": build.reader_endpoint(server),
        "currentPrimary": primary,
        "members": [m.as_status() for m in members],
        "readyInstances": sum(m.in_service for m in members),
        "masterUserSecretName": server.master_secret,
        "storage": {"requested": server.spec.storage.size, **({"allocated": allocated} if allocated else {})},
    }
    if server.tls_secret or "certificateSecretName" in status:  # None (TLS turned off) removes it
        fields["certificateSecretName"] = server.tls_secret
    report = agent_report(pods, primary)
    if report.get("latestRestorableTime"):
        fields["latestRestorableTime"] = report["latestRestorableTime"]
    if report.get("earliestRestorableTime"):
        fields["earliestRestorableTime"] = report["earliestRestorableTime"]
    conditions = [*conditions, *backup_condition(server, report)]
    return publish_status(kube, body, [*conditions, *availability(observed)], fields, observed)


def agent_report(pods: list[dict], primary: str | None) -> dict:
    """The primary's agent report (kuberds.agent.report), or {} when there is none yet."""
    pod = next((p for p in pods if p["metadata"]["name"] == primary), None)
    text = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(AGENT_STATUS_ANNOTATION)
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def backup_condition(server: build.Server, report: dict) -> list[Condition]:
    if server.backup is None:
        return [Condition("BackupHealthy", FALSE, "NoObjectStore",
                          "no backup.objectStore in the spec and none configured for the operator")]  # fmt: skip
    healthy = report.get("backupHealthy")
    if healthy is None:
        return []
    return [Condition("BackupHealthy", TRUE if healthy else FALSE, report.get("backupReason") or "Unknown",
                      report.get("backupMessage") or "")]  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """What the indexes hold about one instance's members right now."""

    instance: dict | None  # as last seen; may lag behind a write (then a 409 makes us re-read)
    pods: list[dict]
    claims: list[dict]
    stateful_set: dict | None
    zones: dict[str, str]


@dataclass
class _Refresh:
    lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: bool = False
    switchover_at: float | None = None  # monotonic time of the last switchover request
    retry: threading.Timer | None = None  # a pass scheduled while a switchover is under way


# After a switchover request the pods' role labels change within seconds; until then (or
# after a refusal) a new request waits this long, and a pass is scheduled to look again.
SWITCHOVER_RETRY_SECONDS = 15.0


# Pod, volume and StatefulSet events of one instance come in bursts. One refresh runs at a
# time per instance; events arriving meanwhile only mark it dirty, and the running refresh
# goes round once more with what the indexes hold then. A burst of N events costs about two
# refreshes, and parallel writers never refuse each other (409).
_refreshes: dict[tuple[str, str], _Refresh] = defaultdict(_Refresh)


def observe(kube: Kube, config: OperatorConfig, namespace: str, name: str, read: Callable[[], Observation]) -> str:
    """Members changed: refresh status, and roll one outdated pod if that is safe now.
    Returns what it did, for logs and tests."""
    refresh = _refreshes[(namespace, name)]
    refresh.dirty = True
    if not refresh.lock.acquire(blocking=False):
        return "coalesced into the refresh under way"
    try:
        actions: list[str] = []
        while refresh.dirty:
            refresh.dirty = False
            action = _refresh_once(kube, config, namespace, name, read(), refresh)
            if not actions or action != actions[-1]:
                actions.append(action)
        if refresh.switchover_at is not None and refresh.retry is None:
            _schedule_retry(refresh, lambda: observe(kube, config, namespace, name, read))
        return "; ".join(actions)
    finally:
        refresh.lock.release()


def _schedule_retry(refresh: _Refresh, again: Callable[[], str]) -> None:
    """No pod event may follow a refused switchover: look again after a while."""

    def run() -> None:
        refresh.retry = None
        log.debug("switchover follow-up: %s", again())

    refresh.retry = threading.Timer(SWITCHOVER_RETRY_SECONDS, run)
    refresh.retry.daemon = True
    refresh.retry.start()


def _refresh_once(kube: Kube, config: OperatorConfig, namespace: str, name: str, seen: Observation,
                  refresh: _Refresh) -> str:  # fmt: skip
    # The index may lag behind a status write; publish_status then re-reads on the conflict.
    if seen.instance is None:
        _refreshes.pop((namespace, name), None)
        return "nothing: the instance is gone"
    return _observe(kube, config, seen.instance, seen.pods, seen.zones, seen.stateful_set, seen.claims, refresh)


def _observe(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str],
             stateful_set: dict | None, claims: list[dict], refresh: _Refresh) -> str:  # fmt: skip
    spec = spec_of(body)
    if spec.automation_paused or engine_for(spec.engine) is None or body["metadata"].get("deletionTimestamp"):
        return "nothing: paused, unsupported or deleting"
    server = _server(body, spec, config, stateful_set)
    conditions, allocated = [], None
    if claims:
        storage, allocated = storage_condition(spec.storage.size, claims)
        if to_bytes(spec.storage.size) > to_bytes(server.claim_size):
            conditions.append(storage)
    publish_server_status(kube, body, server, pods, zones, conditions, allocated)
    update_revision = ((stateful_set or {}).get("status") or {}).get("updateRevision")
    members = [member_from_pod(p, zones) for p in pods]
    target = next_pod_to_roll(members, update_revision, server.replicas)
    if target is None:
        refresh.switchover_at = None
        return "nothing to roll"
    step = handover(members, target, synchronous=server.spec.multi_az)
    if step.action == "wait":
        return step.reason
    if step.action == "replace":
        return roll(kube, body, target)
    since = time.monotonic() - (refresh.switchover_at or -SWITCHOVER_RETRY_SECONDS)
    if since < SWITCHOVER_RETRY_SECONDS:
        return f"switchover requested {since:.0f}s ago: waiting for the roles to change"
    refresh.switchover_at = time.monotonic()
    return switch_over(kube, body, server.engine, pods, target, step.standby)


def agent_api_password(kube: Kube, namespace: str, name: str) -> str | None:
    """The server's HA API password (None for a server made before it existed: no auth)."""
    return _secret_text(kube.get("Secret", namespace, f"{name}-agent-credentials"), "api-password")


def switch_over(kube: Kube, body: dict, engine: Engine, pods: list[dict], primary: Member, standby: Member) -> str:
    """Asks the primary's agent for a planned switchover; the old primary, now a standby, is
    replaced on a later pass. A refusal is reported, and tried again after
    SWITCHOVER_RETRY_SECONDS."""
    ip = next(((p.get("status") or {}).get("podIP") for p in pods if p["metadata"]["name"] == primary.name), None)
    if not ip:
        return f"waiting for the address of primary {primary.name} to switch over"
    password = agent_api_password(kube, body["metadata"]["namespace"], body["metadata"]["name"])
    try:
        answer = agents.send(ip, engine.agent_port, engine.switchover(primary.name, standby.name), password)
    except agents.AgentError as error:
        kopf.event(body, type="Warning", reason="SwitchoverFailed",
                   message=f"switchover from {primary.name} to {standby.name} failed: {error}")  # fmt: skip
        return f"switchover failed: {error}"
    kopf.event(body, type="Normal", reason="Switchover",
               message=f"primary moved from {primary.name} to {standby.name} before replacing {primary.name}: "
               f"{answer}")  # fmt: skip
    return f"switched over from {primary.name} to {standby.name}"


def roll(kube: Kube, body: dict, member: Member) -> str:
    namespace = body["metadata"]["namespace"]
    kopf.event(body, type="Normal", reason="RollingUpdate",
               message=f"replacing {member.role} pod {member.name} with the new template")  # fmt: skip
    kube.delete("Pod", namespace, member.name)
    return f"rolled {member.role} {member.name}"


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    """The finalizer: a final DBSnapshot unless skipFinalSnapshot; volumes are always kept.

    It never gives up: an error that would end another handler keeps this one waiting
    (Kopf releases the finalizer after a permanent failure, and the data would go unsaved).
    """
    try:
        _delete(kube, config, body)
    except kopf.PermanentError as error:
        publish_status(kube, body, [Condition("FinalSnapshot", FALSE, "Failed", str(error))])
        raise kopf.TemporaryError(f"final snapshot failed, retrying: {error}", delay=60) from error


def _delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    spec = spec_of(body)
    meta = body["metadata"]
    if spec.skip_final_snapshot:
        kopf.event(body, type="Normal", reason="DeletedWithoutFinalSnapshot",
                   message="skipFinalSnapshot is true; the volumes are retained")  # fmt: skip
        return
    deleted_at = meta.get("deletionTimestamp") or now()
    name = spec.final_snapshot_name or snapshot_build.final_snapshot_name(meta["name"], deleted_at)
    snapshot, _ = kube.create_if_absent(snapshot_build.final_snapshot(owner_of_body(body), name))
    if (snapshot.get("spec") or {}).get("source", {}).get("dbInstance") != meta["name"]:
        taken = f"DBSnapshot {name} exists and is not a snapshot of this instance; set finalSnapshotName"
        publish_status(kube, body, [Condition("FinalSnapshot", FALSE, "NameTaken", taken)])
        raise kopf.TemporaryError(f"final snapshot name {name} is taken", delay=60)
    snap_phase = (snapshot.get("status") or {}).get("phase")
    if snap_phase == "Available":
        kopf.event(body, type="Normal", reason="FinalSnapshotTaken", message=f"DBSnapshot {name} is available")
        return
    waited = (parse_time(now()) - parse_time(deleted_at)).total_seconds()
    if waited > config.final_snapshot_timeout_seconds:
        condition = Condition("FinalSnapshot", FALSE, "TimedOut",
                              f"DBSnapshot {name} not available after {int(waited)}s (phase {snap_phase}); the "
                              "instance stays until it is, or until spec.skipFinalSnapshot is set to true")  # fmt: skip
    else:
        condition = Condition("FinalSnapshot", FALSE, "InProgress",
                              f"waiting for DBSnapshot {name} (phase {snap_phase or 'Pending'})")  # fmt: skip
    publish_status(kube, body, [condition], {"finalSnapshot": name})
    # Short delay either way: setting skipFinalSnapshot must take effect soon.
    raise kopf.TemporaryError(condition.message, delay=10)


def drifted_child(body: dict, config: OperatorConfig, child_kind: str, child_name: str) -> dict | None:
    """The desired version of one child object, for correcting drift without a full pass."""
    spec = spec_of(body)
    if spec.automation_paused or engine_for(spec.engine) is None:
        return None
    server = _server(body, spec, config, None)
    if child_kind == "StatefulSet":
        return None  # claim templates need the live object: the full pass handles it
    return next(
        (o for o in build.server_objects(server) if o["kind"] == child_kind and o["metadata"]["name"] == child_name),
        None,
    )
