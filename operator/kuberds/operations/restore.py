"""Where a new server's data comes from: a DBSnapshot, or another server's backups at a point
in time. The source is resolved once, before the server's StatefulSet exists; afterwards the
plan handed to the agent is kept (its HA manager uses it only while the cluster is not
initialized yet, and a source deleted later must neither block nor change anything)."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders import settings
from kuberds.builders.meta import Owner
from kuberds.builders.status import Condition
from kuberds.config import OperatorConfig
from kuberds.contract import SETTINGS_FILE, environment
from kuberds.contract.settings import AgentConfig, RestorePlan
from kuberds.kube import Kube
from kuberds.operations.secrets import not_reconciled, secret_text


@dataclass(frozen=True)
class Restore:
    plan: RestorePlan | None = None
    credentials: str | None = None  # the source store's credentials Secret
    key: str | None = None  # the source repository's passphrase Secret
    problem: Condition | None = None


@dataclass(frozen=True)
class RestoreSeen:
    """What resolving a restore source read (observe step)."""

    snapshot: dict | None = None
    source: dict | None = None
    source_ca_secret: dict | None = None


def _source_name(restore: api.Restore, snapshot: dict | None) -> str | None:
    if restore.from_snapshot:
        return (((snapshot or {}).get("spec") or {}).get("source") or {}).get("dbInstance")
    return restore.point_in_time.source


def read_source(kube: Kube, namespace: str, spec: api.ServerSpec, config: OperatorConfig) -> RestoreSeen:
    restore = spec.restore
    snapshot = kube.get("DBSnapshot", namespace, restore.from_snapshot) if restore.from_snapshot else None
    name = _source_name(restore, snapshot)
    source = kube.get("DBInstance", namespace, name) if name else None
    store = settings.object_store(parse(api.DBInstanceSpec, source.get("spec")), config) if source else None
    ca = kube.get("Secret", namespace, store.ca_secret_name) if store and store.ca_secret_name else None
    return RestoreSeen(snapshot, source, ca)


def store_ca(secret: dict | None, store: api.ObjectStore | None, where: str) -> tuple[str | None, Condition | None]:
    """The PEM in the store's caSecretName (key ca.crt); None when it names none. A named
    Secret that is missing, or has no ca.crt, is the condition instead."""
    if store is None or not store.ca_secret_name:
        return None, None
    bundle = secret_text(secret, "ca.crt")
    if bundle:
        return bundle, None
    return None, not_reconciled("SecretNotFound", f"Secret {store.ca_secret_name} ({where}) does not exist or "
                                                  "has no key ca.crt")  # fmt: skip


def resolve(spec: api.ServerSpec, seen: RestoreSeen, config: OperatorConfig) -> Restore:
    """The source's repository and secrets, or why there is none yet. Pure."""
    restore = spec.restore
    snapshot_set, target = None, None
    if restore.from_snapshot:
        if seen.snapshot is None:
            missing = f"DBSnapshot {restore.from_snapshot} (restore.fromSnapshot) does not exist"
            return Restore(problem=not_reconciled("SnapshotNotFound", missing))
        status = seen.snapshot.get("status") or {}
        snapshot_set = status.get("backupID")
        if not snapshot_set or status.get("phase") != "Available":
            waiting = f"DBSnapshot {restore.from_snapshot} is not Available yet"
            return Restore(problem=not_reconciled("SnapshotNotAvailable", waiting))
    else:
        target = restore.point_in_time.time  # None: latest
    name = _source_name(restore, seen.snapshot)
    if seen.source is None and restore.point_in_time:
        return Restore(problem=not_reconciled(
            "RestoreSourceNotFound", f"{name} (restore.pointInTime.source) is not a DBInstance here"))  # fmt: skip
    if seen.source is None:
        return Restore(problem=not_reconciled("RestoreSourceGone",
                       f"restoring needs the source server {name} (its repository and keys); "
                       "restoring from a deleted server's snapshot is not supported yet"))  # fmt: skip
    source_spec = parse(api.DBInstanceSpec, seen.source.get("spec"))
    store = settings.object_store(source_spec, config)
    if store is None:
        return Restore(problem=not_reconciled("RestoreSourceHasNoBackups", f"{name} has no object store"))
    ca_bundle, problem = store_ca(seen.source_ca_secret, store, f"the object store of {name}")
    if problem:
        return Restore(problem=problem)
    encrypted = source_spec.backup.encryption.enabled
    repository = settings.repository(Owner.of(seen.source), store, encrypted, ca_bundle)
    plan = RestorePlan(repository=repository, snapshot_set=snapshot_set, target_time=target)
    return Restore(plan, store.credentials_secret_name, settings.backup_key_secret(name, source_spec))


def kept(settings_config_map: dict | None, stateful_set: dict) -> Restore:
    """The restore plan and secret names as the operator first handed them out. Pure."""
    text = ((settings_config_map or {}).get("data") or {}).get(SETTINGS_FILE)
    plan = AgentConfig.from_json(text).restore if text else None
    env = stateful_set["spec"]["template"]["spec"]["containers"][0].get("env") or []
    credentials, key = environment.secret_names(env, environment.RESTORE_STORE)
    return Restore(plan, credentials, key)
