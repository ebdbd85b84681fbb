"""The primary's binary logs in the object store, for point-in-time restores.

Every closed binlog (all but the active one) goes up sealed (kuberds.agent.sealed) as one
object whose key says everything a restore needs to choose it:

    <path>/binlog/<member>/<file>_<created>_<last>_<start>_<end>.sealed

`created` is the file's first event (its format description), `last` its last one (the rotate
event that closed it), `start` the GTID state before it (its Gtid_list event) and `end` the
state after its last transaction. So one listing is the whole index (no object per file to
read), and an object is there whole or not at all (a PUT is atomic). The member and the
creation time keep two members' files, or a member's files before and after its volume was
lost, apart although their names are the same; a restore picks files by GTID (`chain`), never
by name, so after a failover it goes on from the old primary's files into the new one's.

The file is read with a small parser of the binlog's event headers (format v4, as 10.11 writes
it): no server round trip, no text to parse, and only GTID and Gtid_list bodies are read.
"""

from __future__ import annotations

import heapq
import logging
import re
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from kuberds.agent.mariadb.gtid import EMPTY, Gtid, GtidPos, ahead, covers
from kuberds.agent.mariadb.server import Sql
from kuberds.agent.objectstore import ObjectStore
from kuberds.agent.sealed import seal
from kuberds.contract.settings import Repository

log = logging.getLogger("kuberds.agent")

MAGIC = b"\xfebin"
EVENT_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, size, next position, flags
STOP, ROTATE, FORMAT_DESCRIPTION = 3, 4, 15
BINLOG_CHECKPOINT, GTID, GTID_LIST, START_ENCRYPTION = 161, 162, 163, 164
# Events that belong to no transaction: the file's own bookkeeping.
BOOKKEEPING = {STOP, ROTATE, FORMAT_DESCRIPTION, BINLOG_CHECKPOINT, GTID_LIST}
KEY_TIME = "%Y%m%dT%H%M%SZ"
NO_POSITION = "none"  # an empty GTID state in a key (a new server's first file)
SUFFIX = ".sealed"
FLUSH_SECONDS = 60.0  # with new transactions, the active binlog is closed this often: a restore reaches this close
IDLE_FLUSH_SECONDS = 300.0  # without any, this often: the restorable time still moves on, as RDS's does
FILE_NAME = re.compile(r"^[A-Za-z0-9.\-]+$")


class BinlogError(Exception):
    """A file that is not a binlog this parser can read."""


# ---------------------------------------------------------------- reading a binlog file


@dataclass(frozen=True)
class Event:
    offset: int
    timestamp: int
    kind: int
    server_id: int
    body: bytes = b""  # read only for GTID and Gtid_list events


def events(source: BinaryIO) -> Iterator[Event]:
    """The events of a binlog, headers only; stops at a partial event (an active file's tail)."""
    if source.read(len(MAGIC)) != MAGIC:
        raise BinlogError("not a binlog (no \\xfebin magic)")
    offset = len(MAGIC)
    while len(head := source.read(EVENT_HEADER.size)) == EVENT_HEADER.size:
        timestamp, kind, server_id, size, _, _ = EVENT_HEADER.unpack(head)
        if size < EVENT_HEADER.size:
            raise BinlogError(f"event at {offset}: size {size} is shorter than its header")
        if kind == START_ENCRYPTION:
            raise BinlogError("encrypted binlogs are not supported (encrypt_binlog is off in kuberds' my.cnf)")
        rest = size - EVENT_HEADER.size
        if kind in (GTID, GTID_LIST):
            body = source.read(rest)
            if len(body) < rest:
                return
            yield Event(offset, timestamp, kind, server_id, body)
        else:
            source.seek(rest, 1)
            yield Event(offset, timestamp, kind, server_id)
        offset += size


def gtid_of(event: Event) -> Gtid:
    seq, domain = struct.unpack_from("<QI", event.body)
    return Gtid(domain, event.server_id, seq)


def gtid_list(event: Event) -> GtidPos:
    """A Gtid_list event holds the last GTID of each (domain, server_id): a position keeps the
    furthest of each domain."""
    (count,) = struct.unpack_from("<I", event.body)
    furthest: dict[int, Gtid] = {}
    for i in range(count & 0x0FFFFFFF):
        domain, server_id, seq = struct.unpack_from("<IIQ", event.body, 4 + 16 * i)
        if domain not in furthest or seq > furthest[domain].seq:
            furthest[domain] = Gtid(domain, server_id, seq)
    return GtidPos(furthest)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class BinlogFile:
    name: str
    created: datetime
    last: datetime
    start: GtidPos
    end: GtidPos
    transactions: int


def read_binlog(path: Path) -> BinlogFile:
    created = last = None
    start: GtidPos | None = None
    domains: dict[int, Gtid] = {}
    transactions = 0
    with path.open("rb") as source:
        for event in events(source):
            created = event.timestamp if created is None else created
            last = event.timestamp if last is None else max(last, event.timestamp)
            if event.kind == GTID_LIST and start is None:
                start = gtid_list(event)
                domains = dict(start.domains)
            elif event.kind == GTID:
                gtid = gtid_of(event)
                domains[gtid.domain] = gtid
                transactions += 1
    if created is None:
        raise BinlogError(f"{path.name}: no events")
    return BinlogFile(path.name, _time(created), _time(last), start or EMPTY, GtidPos(domains), transactions)


def transaction_times(path: Path) -> Iterator[tuple[Gtid, datetime]]:
    """Each transaction's GTID and its latest event time (its commit's, as a rule)."""
    current: Gtid | None = None
    latest = 0
    with path.open("rb") as source:
        for event in events(source):
            if event.kind == GTID:
                if current is not None:
                    yield current, _time(latest)
                current, latest = gtid_of(event), event.timestamp
            elif event.kind not in BOOKKEEPING:
                latest = max(latest, event.timestamp)
    if current is not None:
        yield current, _time(latest)


# ---------------------------------------------------------------- keys (pure)


def binlog_prefix(repository: Repository, member: str | None = None) -> str:
    base = f"{repository.path.strip('/')}/binlog/"
    return f"{base}{member}/" if member else base


def _position(text: str) -> GtidPos:
    return EMPTY if text == NO_POSITION else GtidPos.parse(text)


@dataclass(frozen=True)
class BinlogObject:
    """A shipped binlog, as its key describes it."""

    member: str
    file: str
    created: datetime
    last: datetime
    start: GtidPos
    end: GtidPos
    size: int = field(default=0, compare=False)

    def key(self, repository: Repository) -> str:
        fields = [self.file, f"{self.created:{KEY_TIME}}", f"{self.last:{KEY_TIME}}",
                  str(self.start) or NO_POSITION, str(self.end) or NO_POSITION]  # fmt: skip
        return binlog_prefix(repository, self.member) + "_".join(fields) + SUFFIX

    @classmethod
    def of(cls, member: str, binlog: BinlogFile) -> BinlogObject:
        if not FILE_NAME.fullmatch(binlog.name) or "/" in member or "_" in member:
            raise ValueError(f"binlog {binlog.name!r} of {member!r}: a name a key cannot carry")
        return cls(member, binlog.name, binlog.created, binlog.last, binlog.start, binlog.end)

    @classmethod
    def parse(cls, key: str, size: int = 0) -> BinlogObject | None:
        """None for a key that is not a shipped binlog's (a stray object is ignored, not fatal)."""
        *_, member, name = key.split("/")
        fields = name.removesuffix(SUFFIX).split("_")
        if not name.endswith(SUFFIX) or len(fields) != 5:
            return None
        file, created, last, start, end = fields
        try:
            return cls(member, file, _key_time(created), _key_time(last), _position(start), _position(end), size)
        except ValueError:
            return None

    @property
    def empty(self) -> bool:
        return self.start == self.end


def _key_time(text: str) -> datetime:
    return datetime.strptime(text, KEY_TIME).replace(tzinfo=UTC)


def list_binlogs(store: ObjectStore, repository: Repository, member: str | None = None) -> list[BinlogObject]:
    found = (BinlogObject.parse(key, size) for key, size in store.list(binlog_prefix(repository, member)))
    return [o for o in found if o is not None]


# ---------------------------------------------------------------- which files a restore applies (pure)


@dataclass(frozen=True)
class Chain:
    files: list[BinlogObject]  # in the order to apply them
    position: GtidPos  # where the last file leaves the data
    reach: datetime | None  # up to when the history is known: the last file's (or an empty successor's) end


def chain(objects: list[BinlogObject], start: GtidPos, until: datetime | None = None,
          member: str | None = None) -> Chain:  # fmt: skip
    """The files that carry a history on from `start`, each starting at or before where the
    previous one left it and going further, until one reaches `until` (None: as far as they go).
    Among overlapping files (two members' after a failover) the one going furthest is taken:
    a divergent tail, which never continues, loses to the history that did. `member` is whose
    empty files may extend the reach when no file is used (the full backup's member)."""
    ordered = sorted(objects, key=lambda o: (o.start.total, o.created))
    pending: list[tuple[int, float, int]] = []
    used: list[BinlogObject] = []
    position, i = start, 0
    while not (until is not None and used and used[-1].last >= until):
        while i < len(ordered) and ordered[i].start.total <= position.total:
            heapq.heappush(pending, (-ordered[i].end.total, -ordered[i].last.timestamp(), i))
            i += 1
        best = None
        while pending and best is None:
            candidate = ordered[heapq.heappop(pending)[2]]
            if ahead(candidate.end, position) and covers(position, candidate.start) and covers(candidate.end, position):
                best = candidate
        if best is None:
            break
        used.append(best)
        position = best.end
    tip = used[-1].member if used else member
    # A file with no transaction that starts where the history stands says nothing happened
    # until it closed; only the tip member's count (another member may have been behind).
    idle = [o.last for o in objects if o.empty and o.member == tip and o.start == position]
    lasts = [o.last for o in used[-1:]] + [t for t in idle if not used or t >= used[-1].last]
    return Chain(used, position, max(lasts) if lasts else None)


def runs(files: list[BinlogObject]) -> list[list[BinlogObject]]:
    """The chain cut where a file does not start exactly where the previous one ended (another
    member's): mariadb-binlog reads each run in one go from the position it is given."""
    grouped: list[list[BinlogObject]] = []
    for file in files:
        if grouped and grouped[-1][-1].end == file.start and grouped[-1][-1].member == file.member:
            grouped[-1].append(file)
        else:
            grouped.append([file])
    return grouped


# ---------------------------------------------------------------- shipping (on the primary)


def flush_due(now: float, last_flush: float | None, position: str, flushed_position: str | None) -> bool:
    """Close the active binlog every minute while transactions come, every five while idle."""
    if last_flush is None:
        return True
    waited = now - last_flush
    return waited >= IDLE_FLUSH_SECONDS or (waited >= FLUSH_SECONDS and position != flushed_position)


@dataclass
class ShipStats:
    shipped: int = 0
    failed: int = 0
    shipped_bytes: int = 0  # plain binlog bytes
    last_shipped: str | None = None  # the file name
    last_event: datetime | None = None  # latest restorable time this member put in the store


class BinlogShipper:
    """This member's closed binlogs into the store, each once. The store is listed once (and
    again after a failure); what is there is remembered, so a restart re-sends nothing."""

    def __init__(self, store: ObjectStore, repository: Repository, passphrase: str | None, sql: Sql,
                 data_dir: Path, work_dir: Path, member: str):  # fmt: skip
        self.store, self.repository, self.passphrase, self.sql = store, repository, passphrase, sql
        self.data_dir, self.work_dir, self.member = data_dir, work_dir, member
        self.shipped: set[tuple[str, datetime]] | None = None  # (file, created) of this member's objects
        self.others: list[BinlogObject] = []  # what the other members shipped
        self.last_flush: float | None = None
        self.flushed_position: str | None = None
        self.stats = ShipStats()

    def _listed(self) -> set[tuple[str, datetime]]:
        if self.shipped is None:
            objects = list_binlogs(self.store, self.repository)
            self.others = [o for o in objects if o.member != self.member]
            self.shipped = {(o.file, o.created) for o in objects if o.member == self.member}
        return self.shipped

    def closed_files(self) -> list[Path]:
        names = [row["Log_name"] for row in self.sql.rows("SHOW BINARY LOGS")]
        return [self.data_dir / name for name in names[:-1]]  # the last one is still written to

    def flush(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        position = self.sql.rows("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]
        if not flush_due(now, self.last_flush, position, self.flushed_position):
            return False
        self.sql.run("FLUSH BINARY LOGS")
        self.last_flush, self.flushed_position = now, position
        return True

    def ship_once(self) -> int:
        """Flushes when due and ships every closed binlog not in the store yet; returns how
        many were shipped. A read-only member (not the primary) ships nothing."""
        if int(self.sql.rows("SELECT @@read_only AS ro")[0]["ro"]):
            return 0
        self.flush()
        shipped = 0
        try:
            for path in self.closed_files():
                shipped += self._ship(path)
        except Exception:
            self.stats.failed += 1
            self.shipped = None  # list again: what went up before the failure is not sent twice
            raise
        return shipped

    def _ship(self, path: Path) -> int:
        binlog = read_binlog(path)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if (binlog.name, binlog.created) in self._listed() or self._elsewhere(binlog):
            return 0
        target = BinlogObject.of(self.member, binlog)
        started = time.monotonic()
        with tempfile.NamedTemporaryFile(dir=self.work_dir, prefix=".binlog-", suffix=SUFFIX) as sealed:
            with path.open("rb") as source:
                info = seal(source, sealed, self.passphrase)
            sealed.flush()
            self.store.put_file(target.key(self.repository), Path(sealed.name))
        self.shipped.add((binlog.name, binlog.created))
        self.stats.shipped += 1
        self.stats.shipped_bytes += info.plain_bytes
        self.stats.last_shipped, self.stats.last_event = binlog.name, binlog.last
        log.info("binlog %s (%s..%s, %d transactions, %d bytes) shipped in %.2f s", binlog.name,
                 binlog.start or NO_POSITION, binlog.end or NO_POSITION, binlog.transactions, info.plain_bytes,
                 time.monotonic() - started)  # fmt: skip
        return 1

    def _elsewhere(self, binlog: BinlogFile) -> bool:
        """Every transaction of the file is already in other members' files (a new primary's
        binlogs from when it was a replica): not sent again. An empty file is always sent."""
        if binlog.start == binlog.end:
            return False
        reached = chain(self.others, binlog.start).position
        return covers(reached, binlog.end)


def ship_once(shipper: BinlogShipper) -> int:
    """What the agent calls on its worker thread, on the primary only (see BinlogShipper)."""
    return shipper.ship_once()
