"""The agent's decision step: a snapshot of what it observed in, readable steps out. Pure
and engine-neutral.

The loop (kuberds.agent.runtime) has the engine's agent observe (its HA manager, the
engine, its backup tool, DBSnapshot objects), calls `next_steps`, has the engine perform
the steps, and logs their reasons, so what the agent did and why reads the same in its log,
in its pod annotation and in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kuberds.agent.schedule import Backups, Window, automated_backup
from kuberds.contract import PRIMARY

RUNNING = "running"


@dataclass(frozen=True)
class SnapshotRequest:
    name: str
    uid: str
    backup_label: str | None  # set once taken
    deleting: bool
    retain: bool  # deletionPolicy Retain: the object goes, the backup stays
    removal_approved: bool = False  # the operator's go (contract.snapshots): no restore reads it any more


@dataclass(frozen=True)
class Observation:
    now: datetime
    role: str | None  # contract.PRIMARY / REPLICA; None while the HA manager is not answering
    state: str | None  # the engine's state as the HA manager says: running, starting, creating replica, …
    pending_restart: bool = False
    replicas_pending_restart: bool = False
    replaced_soon: bool = False  # this pod's resources are for another instance class
    backups_configured: bool = False
    repository_ready: bool | None = None  # the backup repository is prepared (None: not checked yet)
    backups: Backups = field(default_factory=lambda: Backups(None, None))
    backup_running: bool = False
    retention_days: int = 7
    window: Window = field(default_factory=lambda: Window.parse("03:00-03:30"))
    accounts_ready: bool = False  # master user and database checked this primary term
    ha_settings_current: bool = True  # the HA manager's cluster-wide settings match agent.json
    archive_caught_up: bool = True  # False after a promotion, until the old primary's log is checked
    standby_leader: bool = False  # the leader of a read replica (a standby of its source)
    following_source: bool = False  # agent.json names a source to follow (a read replica not promoted)
    snapshots: list[SnapshotRequest] = field(default_factory=list)

    @property
    def primary(self) -> bool:
        return self.role == PRIMARY and self.state == RUNNING


@dataclass(frozen=True)
class Step:
    # update-ha-settings, ensure-accounts, prepare-repository, archive-catch-up, backup, snapshot,
    # remove-snapshot, restart, wait: the engine's agent performs it (kuberds.agent.runtime)
    kind: str
    reason: str
    argument: str | None = None


def next_steps(o: Observation) -> list[Step]:
    if o.role is None:
        return [Step("wait", "waiting for the HA manager to answer")]
    if o.state != RUNNING:
        return [Step("wait", f"waiting for the engine: {o.state}")]
    steps = _restart(o)
    if o.standby_leader:
        return steps + _replica_leader(o)
    if not o.primary:
        return steps or [Step("wait", "standby: following the primary")]
    if not o.ha_settings_current:
        steps.append(Step("update-ha-settings", "primary: HA settings changed (e.g. multiAZ): updating them"))
    if not o.accounts_ready:
        steps.append(Step("ensure-accounts", "primary: ensuring the master user, database and heartbeat"))
    if not o.backups_configured:
        return steps or [Step("wait", "primary; no backup repository configured")]
    if not o.repository_ready:
        steps.append(Step("prepare-repository", "primary: preparing the backup repository"))
        return steps
    if not o.archive_caught_up and not o.backup_running:
        # A standby may count streamed log as archived; what the old primary had not archived
        # yet would be a hole in the archive (and in point-in-time restore) without this.
        steps.append(Step("archive-catch-up", "promoted: archiving log the old primary may not have archived"))
    steps += _snapshot_steps(o)
    if o.backup_running or any(s.kind == "snapshot" for s in steps):
        return steps
    decision = automated_backup(now=o.now, window=o.window, retention_days=o.retention_days, backups=o.backups)
    steps.append(Step("backup", decision.reason, decision.action) if decision.action else Step("wait", decision.reason))
    return steps


def _replica_leader(o: Observation) -> list[Step]:
    """A read replica's leader follows its source until agent.json stops naming one."""
    if not o.following_source:
        return [Step("update-ha-settings", "replica: the source is no longer followed: promoting")]
    if not o.ha_settings_current:
        return [Step("update-ha-settings", "replica: HA settings changed: updating them")]
    return [Step("wait", "replica: following the source")]


def _restart(o: Observation) -> list[Step]:
    """Parameters that need a restart: standbys first, the primary once none is pending."""
    if not o.pending_restart:
        return []
    if o.replaced_soon:
        # A new instance class: the operator replaces every pod (standby first, after a
        # switchover for the primary), and the new pods start with the new parameters.
        return [Step("wait", "restart pending: the operator replaces this pod for the new instance class")]
    if o.primary and o.replicas_pending_restart:
        return [Step("wait", "restart pending: waiting for the standbys to restart first")]
    return [Step("restart", "a changed parameter needs a restart")]


def _snapshot_steps(o: Observation) -> list[Step]:
    return snapshot_steps(o.snapshots, o.backup_running)


def snapshot_steps(requests: list[SnapshotRequest], backup_running: bool) -> list[Step]:
    """Deletions first (cheap), then at most one new snapshot (one backup at a time); a
    deletion waits for the operator's approval, and a Retain policy keeps the backup."""
    steps = [
        Step("remove-snapshot", f"DBSnapshot {snap.name} deleted: removing its backup", snap.name)
        for snap in requests
        if snap.deleting and snap.backup_label and not snap.retain and snap.removal_approved
    ]
    wanted = next((s for s in requests if not s.deleting and s.backup_label is None), None)
    if wanted and not backup_running:
        steps.append(Step("snapshot", f"DBSnapshot {wanted.name} requested: taking it", wanted.name))
    return steps


@dataclass
class Backoff:
    """A step that failed waits before it is tried again: 5 s, doubling, at most 5 minutes
    (a store that is down is not hammered every loop). Pure: the caller passes the clock."""

    first: float = 5.0
    longest: float = 300.0
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # kind → (count, when)

    def ready(self, kind: str, now: float) -> bool:
        count, when = self.failures.get(kind, (0, 0.0))
        return count == 0 or now - when >= min(self.first * 2 ** (count - 1), self.longest)

    def failed(self, kind: str, now: float) -> None:
        self.failures[kind] = (self.failures.get(kind, (0, 0.0))[0] + 1, now)

    def succeeded(self, kind: str) -> None:
        self.failures.pop(kind, None)
