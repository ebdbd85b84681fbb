"""MariaDB backups' pure parts: how objects are named, what a binlog file says about itself,
which full backup and which binlogs a restore uses, what retention removes, the restorable
window, when a full is due, and the parts a backup stream is cut into."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kuberds.agent.mariadb.backups import (
    DAILY,
    MANUAL,
    Manifest,
    RestoreRefused,
    choose,
    expired_binlogs,
    expired_fulls,
    full_key,
    new_label,
    next_step,
    parse_time,
    part_file,
    restorable_window,
)
from kuberds.agent.mariadb.binlogs import (
    FORMAT_DESCRIPTION,
    GTID,
    GTID_LIST,
    ROTATE,
    START_ENCRYPTION,
    BinlogError,
    BinlogFile,
    BinlogObject,
    chain,
    flush_due,
    read_binlog,
    runs,
    transaction_times,
)
from kuberds.agent.mariadb.gtid import Gtid, GtidPos
from kuberds.agent.mariadb.parts import Part, PartReader, PartWriter
from kuberds.agent.mariadb.restore import replay_argv, temporary_config
from kuberds.agent.sealed import SealError
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository, RestorePlan

REPO = Repository(ObjectStoreTarget("backups"), "/kuberds/shop/orders/uid-1", "orders")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pos(text: str) -> GtidPos:
    return GtidPos.parse(text)


def binlog(member: str, file: str, created: float, last: float, start: str, end: str) -> BinlogObject:
    return BinlogObject(member, file, at(created), at(last), pos(start), pos(end))


def full(label: str, consistent: float, gtid: str, member: str = "db-0", kind: str = DAILY) -> Manifest:
    stamp = at(consistent).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Manifest(label, kind, member, stamp, stamp, stamp, gtid, "mariadb-bin.000001", 4, 10, 5, "00", True)


# ---------------------------------------------------------------- names


def test_a_binlog_key_says_member_file_times_and_gtid_range_and_parses_back() -> None:
    shipped = binlog("db-0", "mariadb-bin.000007", 0, 1.5, "0-1-100", "0-1-250")
    key = shipped.key(REPO)
    assert key == ("kuberds/shop/orders/uid-1/binlog/db-0/"
                   "mariadb-bin.000007_20260301T120000Z_20260301T120130Z_0-1-100_0-1-250.sealed")  # fmt: skip
    assert BinlogObject.parse(key, 42) == shipped and BinlogObject.parse(key, 42).size == 42
    first = binlog("db-1", "mariadb-bin.000001", 0, 1, "", "0-2-3")
    assert "_none_0-2-3.sealed" in first.key(REPO) and BinlogObject.parse(first.key(REPO)) == first
    assert BinlogObject.parse("kuberds/x/binlog/db-0/README") is None
    assert BinlogObject.parse("kuberds/x/binlog/db-0/a_b_c_d_e.sealed") is None, "a stray object is ignored"
    named = BinlogFile("mariadb-bin.000001", at(0), at(1), pos(""), pos("0-1-1"), 1)
    with pytest.raises(ValueError, match="a name a key cannot carry"):
        BinlogObject.of("db_0", named)


def test_full_backup_keys_and_labels() -> None:
    assert new_label(datetime(2026, 3, 1, 3, 4, 5, tzinfo=UTC), DAILY) == "20260301T030405Z-daily"
    assert full_key(REPO, "L", part_file(3)) == "kuberds/shop/orders/uid-1/full/L/backup.mbstream.sealed.00003"
    manifest = full("L", 0, "0-1-5")
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_a_target_time_is_utc_cut_to_the_second() -> None:
    assert parse_time("2026-03-01T12:00:05.900Z") == datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert parse_time("2026-03-01T14:00:05+02:00") == datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="without a UTC offset"):
        parse_time("2026-03-01T12:00:05")


# ---------------------------------------------------------------- reading a binlog


def event(timestamp: int, kind: int, body: bytes = b"", server_id: int = 1) -> bytes:
    size = 19 + len(body) + 4  # a CRC32 trailer, as 10.11 writes by default
    return struct.pack("<IBIIIH", timestamp, kind, server_id, size, 0, 0) + body + b"\0\0\0\0"


def gtid_event(timestamp: int, seq: int, server_id: int = 1, domain: int = 0) -> bytes:
    return event(timestamp, GTID, struct.pack("<QIB", seq, domain, 0) + bytes(6), server_id)


def gtid_list_event(timestamp: int, gtids: list[tuple[int, int, int]]) -> bytes:
    body = struct.pack("<I", len(gtids)) + b"".join(struct.pack("<IIQ", *g) for g in gtids)
    return event(timestamp, GTID_LIST, body)


def write_binlog(path: Path, *events: bytes) -> Path:
    path.write_bytes(b"\xfebin" + b"".join(events))
    return path


def test_a_binlog_file_says_when_it_was_written_and_which_transactions_it_holds(tmp_path: Path) -> None:
    base = int(T0.timestamp())
    path = write_binlog(
        tmp_path / "mariadb-bin.000002",
        event(base, FORMAT_DESCRIPTION, bytes(80)),
        # The binlog state keeps each server's last GTID: a position keeps the domain's furthest.
        gtid_list_event(base, [(0, 1, 5), (0, 2, 3)]),
        gtid_event(base + 10, 6), event(base + 8, 30, bytes(40)), event(base + 10, 16, bytes(8)),
        gtid_event(base + 20, 7), event(base + 20, 30, bytes(40)), event(base + 20, 16, bytes(8)),
        event(base + 25, ROTATE, b"\4" + bytes(7) + b"mariadb-bin.000003"),
    )  # fmt: skip
    read = read_binlog(path)
    assert read == BinlogFile("mariadb-bin.000002", T0, at(25 / 60), pos("0-1-5"), pos("0-1-7"), 2)
    assert list(transaction_times(path)) == [(Gtid(0, 1, 6), at(10 / 60)), (Gtid(0, 1, 7), at(20 / 60))]
    # An active file's tail may be half written: what is whole is read.
    path.write_bytes(path.read_bytes() + gtid_event(base + 30, 8)[:12])
    assert read_binlog(path).end == pos("0-1-7")


def test_what_is_not_a_readable_binlog_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"PK\3\4")
    with pytest.raises(BinlogError, match="not a binlog"):
        read_binlog(tmp_path / "x")
    encrypted = write_binlog(tmp_path / "y", event(0, FORMAT_DESCRIPTION, bytes(80)), event(0, START_ENCRYPTION))
    with pytest.raises(BinlogError, match="encrypted binlogs"):
        read_binlog(encrypted)


# ---------------------------------------------------------------- which binlogs a restore applies


def test_the_chain_follows_gtids_across_a_failover_not_file_names() -> None:
    old = [binlog("db-0", "mariadb-bin.000001", 0, 10, "", "0-1-100"),
           binlog("db-0", "mariadb-bin.000002", 10, 20, "0-1-100", "0-1-200"),
           # The old primary's tail that no replica acknowledged: a branch.
           binlog("db-0", "mariadb-bin.000003", 20, 21, "0-1-200", "0-1-203")]  # fmt: skip
    # db-1 took over at 0-1-200; its own files (same names) overlap what db-0 shipped.
    new = [binlog("db-1", "mariadb-bin.000002", 5, 22, "0-1-50", "0-2-260"),
           binlog("db-1", "mariadb-bin.000003", 22, 30, "0-2-260", "0-2-300"),
           binlog("db-1", "mariadb-bin.000004", 30, 35, "0-2-300", "0-2-300")]  # fmt: skip
    found = chain(old + new, pos("0-1-20"))
    assert [(o.member, o.file) for o in found.files] == [("db-0", "mariadb-bin.000001"),
                                                         ("db-1", "mariadb-bin.000002"),
                                                         ("db-1", "mariadb-bin.000003")]  # fmt: skip
    assert found.position == pos("0-2-300") and found.reach == at(35), "the idle file after it counts"
    assert [[o.file for o in run] for run in runs(found.files)] == [
        ["mariadb-bin.000001"],
        ["mariadb-bin.000002", "mariadb-bin.000003"],
    ]
    # From 0-1-80, db-1's file already carries the history further than db-0's does.
    assert [o.member for o in chain(old + new, pos("0-1-80")).files] == ["db-1", "db-1"]
    until = chain(old + new, pos("0-1-20"), until=at(10))
    assert [o.file for o in until.files] == ["mariadb-bin.000001"], "files past the target are not fetched"
    assert chain(old, pos("0-1-150")).position == pos("0-1-203")
    assert chain([], pos("0-1-1")) == chain([], pos("0-1-1"), member="db-0")
    assert chain([], pos("0-1-1")).reach is None


def test_a_restore_takes_the_newest_full_before_the_target_and_the_binlogs_after_it() -> None:
    fulls = [full("A", 0, "0-1-10"), full("B", 60, "0-1-500")]
    binlogs = [binlog("db-0", "mariadb-bin.000001", 0, 30, "0-1-5", "0-1-300"),
               binlog("db-0", "mariadb-bin.000002", 30, 61, "0-1-300", "0-1-510"),
               binlog("db-0", "mariadb-bin.000003", 61, 90, "0-1-510", "0-1-700")]  # fmt: skip
    to = choose(RestorePlan(REPO, target_time=at(45).isoformat()), fulls, binlogs)
    assert (to.full.label, [o.file for o in to.binlogs], to.stop) == (
        "A",
        ["mariadb-bin.000001", "mariadb-bin.000002"],
        at(45),
    )
    later = choose(RestorePlan(REPO, target_time=at(75).isoformat()), fulls, binlogs)
    assert (later.full.label, [o.file for o in later.binlogs]) == ("B", ["mariadb-bin.000002", "mariadb-bin.000003"])
    latest = choose(RestorePlan(REPO), fulls, binlogs)
    assert (latest.full.label, len(latest.binlogs), latest.stop) == ("B", 2, None)
    snapshot = choose(RestorePlan(REPO, snapshot_set="A"), fulls, binlogs)
    assert (snapshot.full.label, snapshot.binlogs, snapshot.stop) == ("A", [], None)
    with pytest.raises(RestoreRefused, match="after the latest restorable time 2026-03-01T13:30:00Z"):
        choose(RestorePlan(REPO, target_time=at(91).isoformat()), fulls, binlogs)
    with pytest.raises(RestoreRefused, match="earliest restorable time is 2026-03-01T12:00:00Z"):
        choose(RestorePlan(REPO, target_time=at(-5).isoformat()), fulls, binlogs)
    with pytest.raises(RestoreRefused, match="no finished backup 'C'"):
        choose(RestorePlan(REPO, snapshot_set="C"), fulls, binlogs)


def test_the_restorable_window_runs_from_the_oldest_bridged_full_to_the_last_shipped_event() -> None:
    fulls = [full("A", 0, "0-1-10"), full("B", 60, "0-1-500"), full("C", 120, "0-1-900")]
    gap = [binlog("db-0", "mariadb-bin.000001", 0, 30, "0-1-5", "0-1-300"),  # 300..500 never shipped
           binlog("db-0", "mariadb-bin.000003", 50, 130, "0-1-480", "0-1-950"),
           binlog("db-0", "mariadb-bin.000004", 130, 140, "0-1-950", "0-1-950")]  # fmt: skip
    window = restorable_window(fulls, gap)
    assert (window.earliest, window.latest) == (at(60), at(140)), "A's binlogs do not reach B: A is out"
    assert restorable_window(fulls[:1], []) == restorable_window(fulls[:1], gap[1:])
    assert restorable_window(fulls[:1], []).latest == at(0)
    assert restorable_window([], gap) is None


# ---------------------------------------------------------------- retention and schedule


def test_retention_keeps_the_newest_full_and_the_base_of_the_window() -> None:
    now = at(10 * 24 * 60)
    fulls = [full(f"d{day}", day * 24 * 60, f"0-1-{day * 100}") for day in range(10)]
    fulls.append(full("manual", 0, "0-1-1", kind=MANUAL))
    assert expired_fulls(fulls, now, 3) == ["d0", "d1", "d2", "d3", "d4", "d5", "d6"], "d7 is the window's base"
    assert expired_fulls(fulls[:2], now, 3) == ["d0"], "never the newest full"
    kept = [m for m in fulls if m.label not in expired_fulls(fulls, now, 3)]
    binlogs = [binlog("db-0", "mariadb-bin.000001", 0, 60, "", "0-1-650"),
               binlog("db-0", "mariadb-bin.000002", 60, 7 * 24 * 60 + 1, "0-1-650", "0-1-700"),
               binlog("db-0", "mariadb-bin.000003", 7 * 24 * 60 + 1, 7 * 24 * 60 + 2, "0-1-700", "0-1-760"),
               binlog("db-9", "mariadb-bin.000009", 0, 60, "0-1-90", "0-9-95")]  # fmt: skip
    assert [o.file for o in expired_binlogs(binlogs, [m for m in kept if m.kind == DAILY])] == [
        "mariadb-bin.000001", "mariadb-bin.000009"]  # fmt: skip
    assert expired_binlogs(binlogs, []) == []


def test_a_full_is_due_at_once_then_daily_in_the_window_and_expiry_follows() -> None:
    plan = BackupPlan(REPO, retention_days=3, window="03:00-03:30")
    in_window = datetime(2026, 3, 5, 3, 10, tzinfo=UTC)
    assert next_step(in_window, plan, []).action == DAILY
    assert next_step(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), plan, []).reason.startswith("no full backup yet")
    yesterday = full("y", 0, "0-1-1")
    yesterday = Manifest(**{**yesterday.__dict__, "consistent_at": "2026-03-04T03:05:00Z"})
    assert next_step(in_window, plan, [yesterday]).action == DAILY
    today = Manifest(**{**yesterday.__dict__, "label": "t", "consistent_at": "2026-03-05T03:01:00Z"})
    assert next_step(in_window, plan, [yesterday, today]).action is None
    old = Manifest(**{**yesterday.__dict__, "label": "o", "consistent_at": "2026-02-20T03:01:00Z"})
    base = Manifest(**{**yesterday.__dict__, "label": "b", "consistent_at": "2026-02-27T03:01:00Z"})
    step = next_step(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), plan, [old, base, yesterday, today])
    assert (step.action, step.labels) == ("expire", ("o",)), "b stays: restores to Mar 2 start from it"
    assert next_step(in_window, BackupPlan(REPO, retention_days=0), []).action is None


def test_the_active_binlog_closes_every_minute_with_writes_every_five_without() -> None:
    assert flush_due(0, None, "0-1-1", None)
    assert not flush_due(59, 0, "0-1-2", "0-1-1")
    assert flush_due(60, 0, "0-1-2", "0-1-1")
    assert not flush_due(120, 0, "0-1-1", "0-1-1")
    assert flush_due(300, 0, "0-1-1", "0-1-1")


# ---------------------------------------------------------------- the restore's commands


def test_the_temporary_server_is_the_members_config_moved_aside_and_closed_off() -> None:
    config = "[mariadbd]\ndatadir = /var/lib/mysql/data\nlog_bin = /var/lib/mysql/data/mariadb-bin\nport = 3306\n"
    text, base = temporary_config(config, Path("/var/lib/mysql/.data.restoring"), Path("/w"))
    assert base == "mariadb-bin" and text.startswith(config)
    tail = text[len(config) :]
    for line in ("datadir = /var/lib/mysql/.data.restoring", "log_bin = /var/lib/mysql/.data.restoring/mariadb-bin",
                 "socket = /w/pitr.sock", "skip_networking = ON", "skip_grant_tables = ON", "event_scheduler = OFF",
                 "skip_slave_start = ON", "read_only = OFF"):  # fmt: skip
        assert f"\n{line}\n" in tail
    stop = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert replay_argv([Path("/w/a"), Path("/w/b")], "0-1-5", stop)[1:] == [
        "--start-position=0-1-5", "--stop-datetime=2026-03-01 12:00:05", "/w/a", "/w/b"]  # fmt: skip
    assert replay_argv([Path("/w/a")], "", None)[1:] == ["/w/a"]


# ---------------------------------------------------------------- parts


class MemoryStore:
    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def put_file(self, key: str, path: Path) -> int:
        self.objects[key] = path.read_bytes()
        return len(self.objects[key])

    def get_to_file(self, key: str, path: Path) -> int:
        path.write_bytes(self.objects[key])
        return len(self.objects[key])


def test_a_stream_goes_up_in_parts_and_comes_back_whole(tmp_path: Path) -> None:
    store = MemoryStore()
    writer = PartWriter(store, lambda i: f"b/{i:05d}", tmp_path, part_bytes=1000)
    data = bytes(range(256)) * 17  # 4352 bytes: four full parts and a short one
    for start in range(0, len(data), 300):
        writer.write(data[start : start + 300])
    parts = writer.close()
    assert [(p.key, p.bytes) for p in parts] == [(f"b/{i:05d}", 1000) for i in range(4)] + [("b/00004", 352)]
    assert not list(tmp_path.iterdir()), "no temporary part left behind"
    reader = PartReader(store, tuple(parts), tmp_path)
    back = io.BytesIO()
    while block := reader.read(777):
        back.write(block)
    reader.close()
    assert back.getvalue() == data
    store.objects["b/00002"] = b"x" * 1000
    damaged = PartReader(store, tuple(parts), tmp_path)
    with pytest.raises(SealError, match="b/00002: not the part the manifest names"):
        while damaged.read(4096):
            pass
    damaged.close()
    assert Part("k", 1, "s") == Part("k", 1, "s")
