"""Where a new server's data comes from: a DBSnapshot, or another server's backups at a point
in time. The source is resolved once, before the server's StatefulSet exists; afterwards the
plan handed to the agent is kept (its HA manager uses it only while the cluster is not
initialized yet, and a source deleted later must neither block nor change anything)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders import settings
from kuberds.builders.meta import Owner
from kuberds.builders.status import Condition
from kuberds.config import OperatorConfig
from kuberds.contract import SETTINGS_FILE, environment
from kuberds.contract.environment import secret_text
from kuberds.contract.settings import AgentConfig, Repository, RestorePlan
from kuberds.kube import Kube
from kuberds.operations.secrets import (
    PASSPHRASE_KEYS,
    STORE_KEYS,
    Reference,
    first_problem,
    not_reconciled,
)


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
    secrets: dict[str, dict | None] = field(default_factory=dict)  # the source's store keys and passphrase


def _source_spec(source: dict) -> api.DBInstanceSpec:
    return parse(api.DBInstanceSpec, source.get("spec"))


def _source_name(restore: api.Restore, snapshot: dict | None) -> str | None:
    if restore.from_snapshot:
        source = ((snapshot or {}).get("spec") or {}).get("source") or {}
        return source.get("dbInstance") or source.get("dbCluster") or source.get("cacheCluster")
    return restore.point_in_time.source


@dataclass(frozen=True)
class Where:
    """A repository a restore reads: the store, its prefix and name, and the passphrase's Secret."""

    store: api.ObjectStore
    path: str
    stanza: str
    encrypted: bool
    key_secret: str | None
    whose: str  # for messages: "src" or "DBSnapshot nightly"


def _recorded(snapshot: dict | None) -> Where | None:
    """The repository a snapshot recorded when it was taken: it outlives the source server."""
    data = ((snapshot or {}).get("status") or {}).get("repository")
    if not data:
        return None
    kept = parse(api.SnapshotRepository, data)
    name = f"DBSnapshot {snapshot['metadata']['name']}"
    return Where(kept.store, kept.path, kept.stanza, kept.encrypted, kept.key_secret_name, name)


def _live(source: dict, config: OperatorConfig) -> Where | None:
    spec, name = _source_spec(source), source["metadata"]["name"]
    store = settings.object_store(spec, config)
    if store is None:
        return None
    repository = settings.repository(Owner.of(source), store, spec.backup.encryption.enabled)
    return Where(store, repository.path, repository.stanza, repository.encrypted,
                 settings.backup_key_secret(name, spec), name)  # fmt: skip


def _where(seen: RestoreSeen, config: OperatorConfig) -> Where | None:
    """A snapshot's recorded repository first (exactly where its backup is, and kept after
    the source is deleted); else the live source's."""
    return _recorded(seen.snapshot) or (_live(seen.source, config) if seen.source else None)


def read_source(kube: Kube, namespace: str, spec: api.ServerSpec, config: OperatorConfig) -> RestoreSeen:
    restore = spec.restore
    snapshot = kube.get("DBSnapshot", namespace, restore.from_snapshot) if restore.from_snapshot else None
    name = _source_name(restore, snapshot)
    # A point in time needs the live source (its restorable window); a snapshot that recorded
    # its repository does not.
    source = None
    if name and not _recorded(snapshot):  # a DBInstance or a DBCluster: names are unique across both here
        source = kube.get("DBInstance", namespace, name) or kube.get("DBCluster", namespace, name)
    where = _where(RestoreSeen(snapshot, source), config)
    if where is None:
        return RestoreSeen(snapshot, source)
    ca = kube.get("Secret", namespace, where.store.ca_secret_name) if where.store.ca_secret_name else None
    wanted = [ref.secret for ref in _references(where)]
    return RestoreSeen(snapshot, source, ca, {s: kube.get("Secret", namespace, s) for s in wanted})


def _references(where: Where) -> list[Reference]:
    """The Secrets a restore reads with: the store's keys, the repository's passphrase."""
    refs = [Reference(where.store.credentials_secret_name, f"the object store credentials of {where.whose}",
                      STORE_KEYS)]  # fmt: skip
    if where.key_secret:
        refs.append(Reference(where.key_secret, f"the backup passphrase of {where.whose}", PASSPHRASE_KEYS))
    return refs


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


def resolve(spec: api.ServerSpec, seen: RestoreSeen, config: OperatorConfig, now: datetime) -> Restore:
    """The source's repository and secrets, or why there is none yet. Pure."""
    restore, seen = spec.restore, seen or RestoreSeen()
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
        taken_of = status.get("engine")
        if taken_of and taken_of != spec.engine:
            mismatch = f"DBSnapshot {restore.from_snapshot} holds {taken_of} data, which {spec.engine} cannot load"
            return Restore(problem=not_reconciled("SnapshotOfAnotherEngine", mismatch))
    else:
        target = restore.point_in_time.time  # None: latest
    name = _source_name(restore, seen.snapshot)
    if seen.source is None and restore.point_in_time:
        return Restore(problem=not_reconciled(
            "RestoreSourceNotFound", f"{name} (restore.pointInTime.source) is not a DBInstance or DBCluster "
            "here"))  # fmt: skip
    source_engine = ((seen.source or {}).get("spec") or {}).get("engine")
    if restore.point_in_time and source_engine and source_engine != spec.engine:
        mismatch = f"{name} (restore.pointInTime.source) runs {source_engine}, which {spec.engine} cannot load"
        return Restore(problem=not_reconciled("RestoreSourceOfAnotherEngine", mismatch))
    where = _where(seen, config)
    if where is None and seen.source is None:
        return Restore(
            problem=not_reconciled(
                "RestoreSourceGone",
                f"DBSnapshot {restore.from_snapshot} recorded no repository and its source {name} is gone",
            )
        )
    if where is None:
        return Restore(problem=not_reconciled("RestoreSourceHasNoBackups", f"{name} has no object store"))
    ca_bundle, problem = store_ca(seen.source_ca_secret, where.store, f"the object store of {where.whose}")
    problem = problem or first_problem(_references(where), seen.secrets)
    if restore.point_in_time and not problem:
        problem = window_problem(restore.point_in_time, name, seen.source.get("status") or {}, now)
    if problem:
        return Restore(problem=problem)
    repository = Repository(store=settings.store_target(where.store, ca_bundle), path=where.path,
                            stanza=where.stanza, encrypted=where.encrypted)  # fmt: skip
    plan = RestorePlan(repository=repository, snapshot_set=snapshot_set, target_time=target)
    return Restore(plan, where.store.credentials_secret_name, where.key_secret)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def window_problem(point: api.PointInTime, source: str, status: dict, now: datetime) -> Condition | None:
    """A point-in-time target the source's backups cannot reach gets a condition at once,
    rather than a server restored to some other moment."""
    earliest, latest = status.get("earliestRestorableTime"), status.get("latestRestorableTime")
    if not latest:
        return not_reconciled("RestoreWindowEmpty", f"{source} has no restorable time yet (its first backup and "
                              "the archive after it are not in the object store yet); waiting")  # fmt: skip
    if point.time is None:
        return None
    target = _moment(point.time)
    if target > now:
        return not_reconciled("RestoreTimeInFuture", f"restore.pointInTime.time {point.time} is in the future; "
                              f"{source} can be restored up to {latest} now")  # fmt: skip
    if earliest and target < _moment(earliest):
        return not_reconciled("RestoreTimeOutOfRange", f"restore.pointInTime.time {point.time} is before the "
                              f"earliest restorable time of {source}, {earliest} (backups are kept "
                              "backup.retentionDays days)")  # fmt: skip
    if target > _moment(latest):
        return not_reconciled(
            "RestoreTimeNotYetRestorable",
            f"restore.pointInTime.time {point.time} is after the "
            f"latest restorable time of {source}, {latest}; waiting for its archive to reach it",
        )
    return None


def kept(settings_config_map: dict | None, stateful_set: dict,
         agent_config: Callable[[str], Any] = AgentConfig.from_json) -> Restore:  # fmt: skip
    """The restore plan and secret names as the operator first handed them out (`agent_config`
    reads the kind's agent.json). Pure."""
    text = ((settings_config_map or {}).get("data") or {}).get(SETTINGS_FILE)
    plan = agent_config(text).restore if text else None
    env = stateful_set["spec"]["template"]["spec"]["containers"][0].get("env") or []
    credentials, key = environment.secret_names(env, environment.RESTORE_STORE)
    return Restore(plan, credentials, key)
