"""Full backups of a MariaDB server in the object store, and the choices around them: when one
is due, which expire, which one and which binlogs a restore uses, and the restorable window.

A full backup is `mariadb-backup --backup --stream=mbstream`, sealed (kuberds.agent.sealed)
as it streams and cut into parts of PART_BYTES, each uploaded as soon as it is full while the
next one fills: the temporary disk it takes is two parts whatever the database's size (a
single PUT needs its length up front, and a data volume may not hold a second copy).
Under the repository's path:

    full/<label>/backup.mbstream.sealed.00000, .00001, ...   the sealed stream, in order
    full/<label>/manifest.json                               written last: without it, no backup

The GTID position the backup is consistent at is read from mariadb-backup's own report
("MySQL binlog position: ... GTID of the last change '...'") as it runs, with the time it came
(commits are blocked then: the backup holds exactly what was committed before it). A restore
reads the same position again from xtrabackup_binlog_info in the prepared data, and uses
that one: it travels with the data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kuberds.agent.mariadb.binlogs import BinlogObject, chain, list_binlogs
from kuberds.agent.mariadb.gtid import GtidPos, covers
from kuberds.agent.mariadb.parts import PART_BYTES, Part, PartWriter
from kuberds.agent.mariadb.server import LocalServer
from kuberds.agent.objectstore import ObjectStore, ObjectStoreError
from kuberds.agent.processes import OsUser
from kuberds.agent.schedule import Window
from kuberds.agent.sealed import seal
from kuberds.contract.settings import BackupPlan, Repository, RestorePlan

log = logging.getLogger("kuberds.agent")

DAILY, MANUAL = "daily", "manual"
MANIFEST_FILE, STREAM_FILE = "manifest.json", "backup.mbstream.sealed"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
BINLOG_POSITION = re.compile(r"MySQL binlog position: filename '([^']*)', position '(\d+)'"
                             r"(?:, GTID of the last change '([^']*)')?")  # fmt: skip
TOOLS_PATH = "/usr/bin:/usr/local/bin:/bin"
# An errant branch no full backup will ever contain is removed once it ended this long before
# the oldest full kept (clocks of two members may differ a little).
BRANCH_GRACE = timedelta(days=1)


def tool(name: str) -> str:
    return shutil.which(name, path=TOOLS_PATH) or name


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """RFC 3339 (a restore's target): to UTC, cut to the second (binlog times are seconds)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r}: a time without a UTC offset")
    return moment.astimezone(UTC).replace(microsecond=0)


# ---------------------------------------------------------------- manifest and keys


@dataclass(frozen=True)
class Manifest:
    label: str
    kind: str  # daily or manual
    member: str
    started_at: str
    consistent_at: str  # when mariadb-backup blocked commits and read the position (rounded up)
    ended_at: str
    gtid: str  # the GTID position the data is consistent at
    binlog_file: str
    binlog_position: int
    plain_bytes: int  # the mbstream stream
    sealed_bytes: int
    sha256: str  # of the plain stream
    encrypted: bool
    parts: tuple[Part, ...] = ()
    engine_version: str = ""
    snapshot_uid: str | None = None  # a DBSnapshot's uid (manual)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        fields = json.loads(data)
        fields["parts"] = tuple(Part(**p) for p in fields.get("parts") or ())
        return cls(**{k: fields.get(k) for k in cls.__dataclass_fields__})

    @property
    def consistent(self) -> datetime:
        return datetime.strptime(self.consistent_at, TIME_FORMAT).replace(tzinfo=UTC)

    @property
    def position(self) -> GtidPos:
        return GtidPos.parse(self.gtid)


def full_prefix(repository: Repository) -> str:
    return f"{repository.path.strip('/')}/full/"


def full_key(repository: Repository, label: str, file: str) -> str:
    return f"{full_prefix(repository)}{label}/{file}"


def part_file(index: int) -> str:
    return f"{STREAM_FILE}.{index:05d}"


def new_label(now: datetime, kind: str) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{kind}"


def list_fulls(store: ObjectStore, repository: Repository) -> list[Manifest]:
    """Finished backups (those with a manifest), oldest first."""
    keys = [k for k, _ in store.list(full_prefix(repository)) if k.endswith("/" + MANIFEST_FILE)]
    return sorted((Manifest.from_json(store.get_bytes(k)) for k in keys), key=lambda m: (m.consistent_at, m.label))


# ---------------------------------------------------------------- decisions (pure)


@dataclass(frozen=True)
class Step:
    action: str | None  # full, expire; None: nothing to do
    reason: str
    labels: tuple[str, ...] = ()  # the fulls to expire


def expired_fulls(manifests: list[Manifest], now: datetime, retention_days: int) -> list[str]:
    """Daily fulls out of the retention, but for the newest of all and the newest one at or
    before the retention's start: a restore to any time in the retention starts from it."""
    cutoff = now - timedelta(days=retention_days)
    daily = sorted((m for m in manifests if m.kind == DAILY), key=lambda m: m.consistent)
    older = [m for m in daily if m.consistent <= cutoff]
    keep = {older[-1].label} if older else set()
    keep |= {daily[-1].label} if daily else set()
    return [m.label for m in older if m.label not in keep]


def expired_binlogs(objects: list[BinlogObject], kept: list[Manifest]) -> list[BinlogObject]:
    """Binlogs that ended before the oldest full kept and hold nothing it lacks (by GTID), and
    branches that ended well before it; none at all while there is no full."""
    if not kept:
        return []
    oldest = min(kept, key=lambda m: m.consistent)
    return [o for o in objects if (covers(oldest.position, o.end) and o.last <= oldest.consistent)
            or o.last < oldest.consistent - BRANCH_GRACE]  # fmt: skip


def next_step(now: datetime, plan: BackupPlan, manifests: list[Manifest]) -> Step:
    if plan.retention_days <= 0:
        return Step(None, "automated backups are off (retention 0 days)")
    daily = [m for m in manifests if m.kind == DAILY]
    if not daily:
        return Step(DAILY, "no full backup yet: taking one now (point-in-time restores start from it)")
    window = Window.parse(plan.window)
    if window.contains(now) and not any(m.consistent >= window.opened_before(now) for m in daily):
        return Step(DAILY, f"the backup window {plan.window} is open and today's full backup is not taken")
    stale = expired_fulls(manifests, now, plan.retention_days)
    if stale:
        return Step("expire", f"{len(stale)} full backup(s) older than {plan.retention_days} days", tuple(stale))
    return Step(None, "today's full backup is taken; nothing to do")


@dataclass(frozen=True)
class RestorableWindow:
    earliest: datetime
    latest: datetime


def restorable_window(manifests: list[Manifest], objects: list[BinlogObject]) -> RestorableWindow | None:
    """From the newest full to the end of its binlogs, back through each older full whose
    binlogs reach the next one (a gap in the binlogs ends the window there)."""
    fulls = sorted(manifests, key=lambda m: m.consistent)
    if not fulls:
        return None
    newest = fulls[-1]
    reach = chain(objects, newest.position, member=newest.member).reach
    latest = max(newest.consistent, reach) if reach else newest.consistent
    earliest, newer = newest.consistent, newest
    for older in reversed(fulls[:-1]):
        bridge = chain(objects, older.position, until=newer.consistent, member=older.member)
        if not covers(bridge.position, newer.position) and (bridge.reach or older.consistent) < newer.consistent:
            break
        earliest, newer = older.consistent, older
    return RestorableWindow(earliest, latest)


@dataclass(frozen=True)
class RestoreChoice:
    full: Manifest
    binlogs: list[BinlogObject]  # to apply, in order (none for a snapshot)
    stop: datetime | None  # apply events before this time; None: all of them


class RestoreRefused(Exception):
    """The repository cannot restore what was asked: say what it can."""


def choose(plan: RestorePlan, manifests: list[Manifest], objects: list[BinlogObject]) -> RestoreChoice:
    """A snapshot's own full; for a time, the newest full consistent at or before it and the
    binlogs from there on (events before the time are applied: a transaction whose binlog
    time is the target second or later is not); with neither, the latest restorable time."""
    if plan.snapshot_set:
        found = [m for m in manifests if m.label == plan.snapshot_set]
        if not found:
            raise RestoreRefused(f"no finished backup {plan.snapshot_set!r} in the repository")
        return RestoreChoice(found[0], [], None)
    target = parse_time(plan.target_time) if plan.target_time else None
    fulls = sorted((m for m in manifests if target is None or m.consistent <= target), key=lambda m: m.consistent)
    window = restorable_window(manifests, objects)
    if not fulls or window is None:
        earliest = f"; the earliest restorable time is {iso(window.earliest)}" if window else ""
        raise RestoreRefused(f"no full backup at or before {plan.target_time or 'now'}{earliest}")
    full = fulls[-1]
    found = chain(objects, full.position, until=target, member=full.member)
    reach = max(full.consistent, found.reach) if found.reach else full.consistent
    if target is not None and reach < target:
        raise RestoreRefused(f"{iso(target)} is after the latest restorable time {iso(reach)}")
    return RestoreChoice(full, found.files, target)


# ---------------------------------------------------------------- taking a full backup


@dataclass
class Report:
    """mariadb-backup's stderr, read as it comes: the binlog position and when it was reported."""

    lines: list[str] = field(default_factory=list)
    position: tuple[str, int, str] | None = None
    at: float | None = None

    def read(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.lines = [*self.lines[-199:], line]
            if (found := BINLOG_POSITION.search(line)) and self.position is None:
                self.position, self.at = (found[1], int(found[2]), found[3] or ""), time.time()


def backup_argv(server: LocalServer, os_user: OsUser, scratch: Path) -> list[str]:
    return [tool("mariadb-backup"), f"--defaults-file={server.config_file}", "--backup", "--stream=mbstream",
            f"--target-dir={scratch}", f"--tmpdir={scratch}", f"--socket={server.socket}",
            f"--user={os_user.name}"]  # fmt: skip


def take_full(store: ObjectStore, repository: Repository, passphrase: str | None, server: LocalServer,
              work_dir: Path, member: str, kind: str = DAILY, snapshot_uid: str | None = None,
              engine_version: str = "", part_bytes: int = PART_BYTES) -> Manifest:  # fmt: skip
    """One full backup, uploaded, its manifest written last."""
    started = datetime.now(UTC)
    label = new_label(started, kind)
    scratch = work_dir / f"backup-{label}"
    scratch.mkdir(parents=True, mode=0o700)
    server.os_user.own(scratch)
    parts = PartWriter(store, lambda i: full_key(repository, label, part_file(i)), work_dir, part_bytes)
    report = Report()
    process = server.os_user.popen(backup_argv(server, server.os_user, scratch), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)  # fmt: skip
    reader = threading.Thread(target=report.read, args=(process.stderr,), daemon=True)
    reader.start()
    clock = time.monotonic()
    try:
        sealed = seal(process.stdout, parts, passphrase)
        code = process.wait()
        reader.join()
        if code != 0 or report.position is None:
            raise RuntimeError(f"mariadb-backup exited with {code}: " + "\n".join(report.lines[-20:]))
        uploaded = parts.close()
    except BaseException:
        process.kill()
        process.wait()
        for part in parts.abort():  # no manifest will name them
            with contextlib.suppress(ObjectStoreError):
                store.delete(part.key)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - clock
    file, offset, gtid = report.position
    consistent = datetime.fromtimestamp(math.ceil(report.at), UTC)
    manifest = Manifest(label, kind, member, iso(started), iso(consistent), iso(datetime.now(UTC)), gtid, file,
                        offset, sealed.plain_bytes, sealed.sealed_bytes, sealed.sha256, passphrase is not None,
                        tuple(uploaded), engine_version, snapshot_uid)  # fmt: skip
    store.put_bytes(full_key(repository, label, MANIFEST_FILE), manifest.to_json())
    log.info("full backup %s at %s: %d bytes streamed, %d stored in %d parts, in %.1f s (%.1f MiB/s)", label,
             gtid or "an empty position", sealed.plain_bytes, sealed.sealed_bytes, len(uploaded), seconds,
             sealed.plain_bytes / max(seconds, 1e-6) / 2**20)  # fmt: skip
    return manifest


def remove_full(store: ObjectStore, repository: Repository, manifest: Manifest) -> None:
    # The manifest first: a backup half removed is no longer listed, and never restored from.
    store.delete(full_key(repository, manifest.label, MANIFEST_FILE))
    for part in manifest.parts:
        store.delete(part.key)


@dataclass
class BackupStats:
    taken: int = 0
    failed: int = 0
    last_label: str | None = None
    last_seconds: float | None = None
    last_bytes: int | None = None  # stored (sealed)


class MariaDBBackups:
    """The server's automated full backups and their retention, as one member's agent runs
    them: `step` on a worker thread (a backup takes as long as its upload)."""

    def __init__(self, store: ObjectStore, plan: BackupPlan, passphrase: str | None, server: LocalServer,
                 work_dir: Path, member: str, engine_version: str = ""):  # fmt: skip
        self.store, self.plan, self.passphrase, self.server = store, plan, passphrase, server
        self.work_dir, self.member, self.engine_version = work_dir, member, engine_version
        self.last: Step | None = None
        self.stats = BackupStats()

    def step(self, now: datetime | None = None) -> Step:
        now = now or datetime.now(UTC)
        manifests = list_fulls(self.store, self.plan.repository)
        step = next_step(now, self.plan, manifests)
        if self.last is None or step.reason != self.last.reason:
            log.info("backups: %s", step.reason)
        self.last = step
        if step.action == DAILY:
            self.take(DAILY)
        elif step.action == "expire":
            self.expire(manifests, set(step.labels))
        return step

    def take(self, kind: str, snapshot_uid: str | None = None) -> Manifest:
        started = time.monotonic()
        try:
            manifest = take_full(self.store, self.plan.repository, self.passphrase, self.server, self.work_dir,
                                 self.member, kind, snapshot_uid, self.engine_version)  # fmt: skip
        except Exception:
            self.stats.failed += 1
            raise
        self.stats.taken += 1
        self.stats.last_label, self.stats.last_bytes = manifest.label, manifest.sealed_bytes
        self.stats.last_seconds = time.monotonic() - started
        return manifest

    def expire(self, manifests: list[Manifest], labels: set[str]) -> None:
        for manifest in manifests:
            if manifest.label in labels:
                remove_full(self.store, self.plan.repository, manifest)
                log.info("full backup %s removed (retention)", manifest.label)
        # DBSnapshots restore without binlogs: only the automated fulls keep them.
        kept = [m for m in manifests if m.label not in labels and m.kind == DAILY]
        for binlog in expired_binlogs(list_binlogs(self.store, self.plan.repository), kept):
            self.store.delete(binlog.key(self.plan.repository))

    def window(self) -> RestorableWindow | None:
        """For the operator's status: the earliest and latest restorable times."""
        return restorable_window(list_fulls(self.store, self.plan.repository),
                                 list_binlogs(self.store, self.plan.repository))  # fmt: skip
