"""The PostgreSQL agent's backups, through pgBackRest: its configuration files, the view of
the repositories, the backup steps (stanza, automated backups, DBSnapshots, the archive
catch-up after a promotion), and how far a point-in-time restore can reach."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from kuberds.agent.decisions import Backoff, Step
from kuberds.agent.pod import Pod
from kuberds.agent.postgres import pgbackrest
from kuberds.agent.processes import OsUser, Worker
from kuberds.agent.report import AgentMetrics
from kuberds.agent.schedule import Archiving, Backups
from kuberds.agent.snapshots import Snapshots
from kuberds.contract import snapshots as snapshot_phases
from kuberds.contract.environment import Credentials
from kuberds.contract.settings import BackupPlan, RestorePlan

log = logging.getLogger("kuberds.agent")

INFO_EVERY_SECONDS = 60.0
WAL_SEGMENT = 16 * 2**20
OWN_CONFIG, RESTORE_CONFIG = "pgbackrest.conf", "pgbackrest-restore.conf"


def segment_number(wal_file: str | None) -> int | None:
    """Position of a WAL file (TTTTTTTTXXXXXXXXYYYYYYYY[.partial]) in the stream of 16 MiB
    segments; None for anything else (a timeline's .history file is archived too)."""
    name = (wal_file or "")[:24]
    if len(name) != 24 or any(c not in "0123456789ABCDEF" for c in name):
        return None
    return int(name[8:16], 16) * (2**32 // WAL_SEGMENT) + int(name[16:24], 16)


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class PgBackRest:
    """pgBackRest for one member. `plan` is None without an object store; `restore` is the
    repository a new server bootstraps from."""

    def __init__(self, pod: Pod, port: int, plan: BackupPlan | None, restore: RestorePlan | None,
                 credentials: Credentials, user: OsUser, metrics: AgentMetrics, snapshots: Snapshots,
                 backoff: Backoff, engine_version: str):  # fmt: skip
        self.pod, self.port, self.plan, self.restore_plan = pod, port, plan, restore
        self.credentials, self.user, self.metrics, self.snapshots = credentials, user, metrics, snapshots
        self.backoff = backoff  # a backup failing in the background backs its steps off too
        self.engine_version = engine_version
        run = pod.run_dir
        self.own = pgbackrest.Commands(run / OWN_CONFIG, plan.repository.stanza) if plan else None
        self.source = pgbackrest.Commands(run / RESTORE_CONFIG, restore.repository.stanza) if restore else None
        # On the data volume: the run directory is in memory (it holds the keys), and the
        # archive queue and logs must neither count against the pod's memory nor vanish.
        self.spool, self.logs = pod.data_dir.parent / "pgbackrest" / "spool", pod.data_dir.parent / "pgbackrest" / "log"
        self.worker = Worker()
        # The repositories as last read.
        self.stanza_ready: bool | None = None
        self.records: list[pgbackrest.BackupRecord] = []
        self.info_lock = threading.Lock()
        self.info_checked = 0.0
        # How far point-in-time restore reaches: heartbeats and the newest archived segment.
        self.archived_upto: int | None = None
        # Segments have waited since (monotonic), with the archive at stall_mark all along.
        self.waiting_since: float | None = None
        self.stall_mark: int | None = None
        self.heartbeats: deque[tuple[datetime, int]] = deque(maxlen=720)
        self.latest_restorable: datetime | None = None

    # -- files

    def directories(self) -> tuple[Path, ...]:
        return self.spool, self.logs

    def write_configuration(self) -> None:
        """The member's own repositories (rewritten when retention or the window change:
        pgBackRest reads its file on every command)."""
        if self.plan is None:
            return
        c = self.credentials
        secrets = pgbackrest.secret_options(self.plan.repository, c.s3_access_key, c.s3_secret_key, c.cipher_pass)
        ca_file = self._write_store_ca(self.plan.repository.store.ca_bundle, "store-ca.crt")
        text = pgbackrest.configuration(repository=self.plan.repository, retention_days=self.plan.retention_days,
                                        data_dir=self.pod.data_dir, port=self.port, socket_dir=self.pod.run_dir,
                                        spool_dir=self.spool, log_dir=self.logs, secrets=secrets,
                                        ca_file=ca_file)  # fmt: skip
        self.user.write_private(self.pod.run_dir / OWN_CONFIG, text)

    def write_restore_configuration(self) -> None:
        """The source's repositories, read with the source's keys (our own as a fallback)."""
        restore, c = self.restore_plan, self.credentials
        if restore is None:
            return
        secrets = pgbackrest.secret_options(restore.repository, c.restore_s3_access_key or c.s3_access_key,
                                            c.restore_s3_secret_key or c.s3_secret_key,
                                            c.restore_cipher_pass or c.cipher_pass)  # fmt: skip
        ca_file = self._write_store_ca(restore.repository.store.ca_bundle, "restore-store-ca.crt")
        text = pgbackrest.restore_configuration(repository=restore.repository, spool_dir=self.spool / "restore",
                                                log_dir=self.logs, data_dir=self.pod.data_dir, secrets=secrets,
                                                ca_file=ca_file)  # fmt: skip
        self.user.write_private(self.pod.run_dir / RESTORE_CONFIG, text)

    def _write_store_ca(self, bundle: str | None, file: str) -> Path | None:
        """A private CA of the object store, where pgBackRest reads it (every command rereads)."""
        if not bundle:
            return None
        path = self.pod.run_dir / file
        self.user.write_private(path, bundle)
        return path

    def replan(self, plan: BackupPlan | None) -> None:
        """retentionDays or the window changed (the store itself cannot change)."""
        log.info("backup settings changed: retention %s days, window %s", plan.retention_days, plan.window)
        self.plan = plan
        self.write_configuration()

    # -- the repositories as they are

    def refresh(self, force: bool = False) -> None:
        """Reads the repositories. The loop and the backup worker both call it: one at a time
        (the lock), and a repository in error keeps the last good view rather than looking
        empty (an empty view would start a needless "first" full backup)."""
        if self.own is None or (not force and time.monotonic() - self.info_checked < INFO_EVERY_SECONDS):
            return
        with self.info_lock:
            result = self.user.run(self.own.info(), timeout=60)
            self.info_checked = time.monotonic()
            if result.returncode != 0:
                log.warning("pgbackrest info failed: %s", result.stderr.strip()[-500:])
                return
            info = json.loads(result.stdout)
            ready = pgbackrest.stanza_ready(info, self.own.stanza)
            if ready or self.stanza_ready is None:
                self.stanza_ready = ready
            if ready:
                self.records = pgbackrest.parse_info(info, self.own.stanza)
            else:
                log.warning("backup repository not readable as a whole; keeping the last view")

    def automated(self) -> list[pgbackrest.BackupRecord]:
        return [b for b in self.records if b.repo == pgbackrest.AUTOMATED]

    def schedule_view(self) -> Backups:
        automated = self.automated()
        fulls = [b for b in automated if b.kind == "full"]
        return Backups(fulls[-1].stopped if fulls else None, automated[-1].stopped if automated else None)

    def label_for(self, uid: str) -> str | None:
        """A snapshot already in the repository (taken before a restart of the agent)."""
        for record in self.records:
            if record.annotations.get(pgbackrest.DELETED_ANNOTATION):
                continue
            if record.annotations.get(pgbackrest.SNAPSHOT_ANNOTATION) == uid:
                return record.label
        return None

    def snapshot_requests(self):
        found = None if self.worker.busy else self._mark_available
        return self.snapshots.requests(self.label_for, found)

    # -- steps

    def prepare_repository(self, step: Step) -> bool:
        result = self.user.run(self.own.stanza_create(), timeout=120)
        if result.returncode != 0:
            log.warning("stanza-create failed: %s", result.stderr.strip()[-500:])
            return False
        self.refresh(force=True)
        return True

    def archive_catch_up(self, step: Step) -> bool:
        """Pushes every complete segment in pg_wal that a standby marked done (streamed, not
        archived by it) and that is newer than the repository's newest; pgBackRest skips a
        segment it already holds with the same content."""
        result = self.user.run(self.own.info(), timeout=60)
        if result.returncode != 0:
            return False
        newest = segment_number(pgbackrest.archive_max(json.loads(result.stdout), self.own.stanza))
        wal = self.pod.data_dir / "pg_wal"
        pushed = 0
        for done in sorted((wal / "archive_status").glob("*.done")):
            name = done.name.removesuffix(".done")
            number = segment_number(name)
            if len(name) != 24 or number is None or (newest is not None and number <= newest):
                continue
            if self.user.run(self.own.push_now(wal / name), timeout=300).returncode != 0:
                log.warning("archiving %s after promotion failed; will retry", name)
                return False
            pushed += 1
        log.info("after promotion: %d segment(s) of the old primary archived", pushed)
        return True

    def backup(self, step: Step) -> None:
        def job() -> None:
            # pgBackRest expires repo1 by itself after the backup; repo2's WAL is trimmed here.
            if self._backup(self.own.backup(step.argument)):
                self.user.run(self.own.expire(pgbackrest.SNAPSHOTS), timeout=600)

        self.worker.start(f"{step.argument} backup", job)

    def _backup(self, argv: list[str]) -> bool:
        started = time.monotonic()
        result = self.user.run(argv)
        self.metrics.backup_seconds.set(time.monotonic() - started)
        if result.returncode != 0:
            log.warning("backup failed (%s): %s", result.returncode, result.stderr.strip()[-800:])
            self.metrics.backup_failures.inc()
            self.backoff.failed("backup", time.monotonic())
            self.backoff.failed("snapshot", time.monotonic())
        self.refresh(force=True)
        return result.returncode == 0

    def snapshot(self, step: Step) -> None:
        name = step.argument
        snap = self.snapshots.get(name)
        if snap is None:
            return
        uid = snap["metadata"]["uid"]
        self.snapshots.set_status(name, {"phase": snapshot_phases.CREATING})
        argv = self.own.backup("full", repo=pgbackrest.SNAPSHOTS, annotations={pgbackrest.SNAPSHOT_ANNOTATION: uid})

        def job() -> None:
            ok = self._backup(argv)
            if ok:
                self._expire_marked_snapshots()
            record = next((r for r in self.records if r.annotations.get(pgbackrest.SNAPSHOT_ANNOTATION) == uid), None)
            if ok and record:
                self._mark_available(name, record.label)
            else:
                self.snapshots.set_status(name, {"phase": snapshot_phases.FAILED})

        self.worker.start(f"snapshot {name}", job)

    def _mark_available(self, name: str, label: str) -> None:
        record = next((r for r in self.records if r.label == label), None)
        if record is None:
            return
        self.snapshots.set_status(name, {
            "phase": snapshot_phases.AVAILABLE, "backupID": record.label, "snapshotTime": rfc3339(record.stopped),
            "sizeBytes": record.size_bytes, "engine": "postgres", "engineVersion": self.engine_version,
        })  # fmt: skip

    def remove_snapshot(self, step: Step) -> bool | None:
        snap = next((s for s in self.snapshot_requests() if s.name == step.argument), None)
        if snap is None or snap.backup_label is None:
            return None
        result = self.user.run(self.own.expire_set(snap.backup_label, pgbackrest.SNAPSHOTS), timeout=600)
        if result.returncode != 0 and pgbackrest.NEWEST_FULL_ERROR in result.stderr:
            log.info("snapshot %s is the newest in its repository: hidden now, removed after the next", snap.name)
            result = self.user.run(self.own.mark_deleted(snap.backup_label), timeout=120)
        if result.returncode != 0:
            log.warning("removing snapshot %s failed: %s", snap.name, result.stderr.strip()[-500:])
            return False
        self.refresh(force=True)
        self.snapshots.set_status(snap.name, {"phase": snapshot_phases.DELETED, "backupID": None})
        return None

    def _expire_marked_snapshots(self) -> None:
        """Snapshots deleted while they were the newest: no longer the newest now."""
        for record in self.records[:-1]:
            if record.repo == pgbackrest.SNAPSHOTS and record.annotations.get(pgbackrest.DELETED_ANNOTATION):
                self.user.run(self.own.expire_set(record.label, pgbackrest.SNAPSHOTS), timeout=600)
        self.refresh(force=True)

    # -- how far a restore reaches

    def note_heartbeat(self, at: datetime, lsn: str) -> None:
        self.heartbeats.append((at, lsn_to_int(lsn)))

    def archiving(self, row: tuple) -> Archiving:
        """pg_stat_archiver's row as Archiving; moves the latest restorable time to the last
        heartbeat inside an archived segment."""
        archived, archived_at, failed_at, failed, current_file = row
        current, done_upto = segment_number(current_file), segment_number(archived)
        if done_upto is None:  # nothing archived yet, or the last file was a .history file
            done_upto = self.archived_upto
        self.archived_upto = done_upto
        behind = current - done_upto - 1 if done_upto is not None else current
        if done_upto is not None:
            archived_end = (done_upto + 1) * WAL_SEGMENT
            done = [t for t, lsn in self.heartbeats if lsn <= archived_end]
            if done and (self.latest_restorable is None or done[-1] > self.latest_restorable):
                self.latest_restorable = done[-1]
        return Archiving(archived_at, failed_at, failed, max(behind, 0), self._stalled(behind, done_upto))

    def _stalled(self, behind: int, done_upto: int | None, now: float | None = None) -> float:
        """Seconds that segments have waited with no progress (0 when none waits)."""
        now = time.monotonic() if now is None else now
        if behind <= 0:
            self.waiting_since, self.stall_mark = None, done_upto
            return 0.0
        if self.waiting_since is None or done_upto != self.stall_mark:
            self.waiting_since, self.stall_mark = now, done_upto  # waiting starts, or progress was made
        return now - self.waiting_since

    def restorable(self) -> tuple[datetime | None, datetime | None]:
        """(earliest, latest) moment a restore reaches; latest is None until a base backup
        exists and its end is archived."""
        automated = self.automated()
        earliest = automated[0].stopped if automated else None
        latest = self.latest_restorable
        if latest is not None and (earliest is None or latest < earliest):
            latest = None
        return earliest, latest
