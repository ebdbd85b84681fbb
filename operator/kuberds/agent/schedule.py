"""When an automated backup is due, and how healthy archiving is. Pure decisions.

Each function takes what the agent observed and returns a readable decision, so tests
assert on the words an operator would read in the agent's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

FULL_EVERY = timedelta(days=7)  # a weekly full, incrementals on the other days


@dataclass(frozen=True)
class Window:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        start, end = text.split("-")
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def opened_before(self, now: datetime) -> datetime:
        """Start of the window that is open now, or of the last one that opened."""
        start = now.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        return start if start <= now else start - timedelta(days=1)

    def contains(self, now: datetime) -> bool:
        length = (datetime.combine(now.date(), self.end) - datetime.combine(now.date(), self.start)) % timedelta(days=1)
        return now - self.opened_before(now) < length


@dataclass(frozen=True)
class Decision:
    action: str | None  # "full", "incr", or None: nothing to do
    reason: str


@dataclass(frozen=True)
class Backups:
    """What the automated repository holds: stop times of full backups and of any backup."""

    last_full: datetime | None
    last_any: datetime | None


def automated_backup(*, now: datetime, window: Window, retention_days: int, backups: Backups) -> Decision:
    """For a primary with no backup running (the agent's decision step checks both)."""
    if retention_days == 0:
        return Decision(None, "automated backups are off (retentionDays 0)")
    if backups.last_full is None:
        # Like RDS: the first backup is taken at once, so PITR works from the start.
        return Decision("full", "no full backup in the repository yet: taking one now")
    opened = window.opened_before(now)
    if backups.last_any is not None and backups.last_any >= opened:
        return Decision(None, "today's backup is done")
    if not window.contains(now):
        return Decision(None, f"waiting for the backup window {window.start:%H:%M}-{window.end:%H:%M}")
    if now - backups.last_full >= FULL_EVERY:
        return Decision("full", "in the backup window; the last full backup is a week old: full backup")
    return Decision("incr", "in the backup window: incremental backup")


@dataclass(frozen=True)
class Archiving:
    """How archiving of the engine's log (PostgreSQL's WAL) goes, and how far writing is ahead."""

    last_archived_time: datetime | None
    last_failed_time: datetime | None
    failed_count: int
    segments_behind: int  # log segments written and not yet archived
    # How long segments have waited with none archived (an archive command that hangs, or
    # retries for minutes before it fails, shows here first); 0 when none waits.
    stalled_seconds: float = 0.0


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str
    message: str


# A finished segment is archived within seconds when the store answers: a minute with none
# archived is a problem worth saying before the archive command itself gives up.
STALL_LIMIT_SECONDS = 60


def archive_health(archiving: Archiving, lag_limit: int = 16, log: str = "WAL") -> Health:
    """BackupHealthy: archiving works and keeps up. A failure after the last success, or a
    backlog, makes it False (the log stays on the volume meanwhile: nothing is dropped).
    `log` is what the engine calls its log, for the messages."""
    last_ok, last_failed = archiving.last_archived_time, archiving.last_failed_time
    if last_failed is not None and (last_ok is None or last_failed > last_ok):
        return Health(False, "ArchiveFailing",
                      f"{log} archiving to the object store fails since {last_failed:%Y-%m-%dT%H:%M:%SZ}; "
                      f"{archiving.segments_behind} segment(s) waiting on the volume")  # fmt: skip
    if archiving.segments_behind and archiving.stalled_seconds >= STALL_LIMIT_SECONDS:
        return Health(False, "ArchiveStalled", f"{archiving.segments_behind} {log} segment(s) waiting on the volume "
                      f"and none archived for {archiving.stalled_seconds:.0f}s")  # fmt: skip
    if archiving.segments_behind > lag_limit:
        return Health(False, "ArchiveLagging", f"{archiving.segments_behind} {log} segments not archived yet")
    return Health(True, "Archiving", f"{log} archiving is current")
