"""MariaDB backups and point-in-time restores with a real mariadbd (run as `mysql`, as in a pod)
and a real S3 server: a full backup sealed in the bucket and restored whole into a new data
directory; binlogs shipped and a restore to a time between two batches of rows, at the exact
second boundary; a wrong passphrase refused; retention keeping the newest full. Prints the
MiB/s of backup and restore against a plain copy of the data directory."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import pytest
from tests.support.dataplane import BUCKET
from tests.support.kube import free_port, wait_for
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS

from kuberds.agent.mariadb.backups import MariaDBBackups, full_prefix, list_fulls, take_full
from kuberds.agent.mariadb.binlogs import BinlogShipper, list_binlogs, ship_once, transaction_times
from kuberds.agent.mariadb.config import MariaDBConfig, render
from kuberds.agent.mariadb.gtid import Gtid, GtidPos
from kuberds.agent.mariadb.restore import restore
from kuberds.agent.mariadb.server import LocalServer
from kuberds.agent.objectstore import ObjectStore
from kuberds.agent.sealed import SealError
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository, RestorePlan

ROWS, PAYLOAD = 4000, 8192  # 32 MiB of rows that compress about as well as real data: hex
MBSTREAM_MAGIC = b"XBSTCK01"
PASSPHRASE = "the passphrase of this test"
MiB = 2**20


def note(i: int) -> str:
    return f"row-{i:06d}-kuberds-marker"


class Member:
    """One mariadbd on this host as the agent runs it: LocalServer with the agent's my.cnf."""

    def __init__(self, root: Path, name: str):
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        self.name, self.root, self.port = name, root, free_port()
        self.server = LocalServer(Path("/usr/sbin"), root / "data", root / "run", "mysql")
        self.config = render(MariaDBConfig(
            server_id=1, port=self.port, datadir=str(self.server.data_dir), socket=str(self.server.socket),
            pid_file=str(root / "run" / "mysqld.pid"), tmpdir=str(root / "run"), files_dir=str(self.server.files_dir),
            bind_address="127.0.0.1"))  # fmt: skip
        self.work = root / "work"
        self.work.mkdir(exist_ok=True)

    def prepare(self) -> None:
        self.server.prepare(self.config)

    def start(self, install: bool = False) -> Member:
        self.prepare()
        if install:
            self.server.install()
        self.server.start()
        wait_for(lambda: self.answers(), timeout=120, what=f"{self.name}'s mariadbd answering")
        self.sql("SET GLOBAL read_only = OFF")  # the agent's promotion
        return self

    def answers(self) -> bool:
        try:
            self.server.sql.rows("SELECT 1")
            return True
        except (pymysql.Error, OSError):
            return False

    def sql(self, statement: str, args: tuple = ()) -> list[dict]:
        return self.server.sql.rows(statement, args)

    def ids(self, table: str) -> set[int]:
        return {row["id"] for row in self.sql(f"SELECT id FROM shop.{table}")}

    def stop(self) -> None:
        self.server.sql.close()
        assert self.server.stop() == 0


@pytest.fixture(scope="module")
def source(workroot: Path) -> Iterator[Member]:
    member = Member(Path(tempfile.mkdtemp(prefix="b", dir=workroot)), "shop-0").start(install=True)
    member.sql("CREATE DATABASE shop")
    yield member
    member.stop()


@pytest.fixture
def copies(workroot: Path) -> Iterator[list[Member]]:
    made: list[Member] = []
    yield made
    for member in made:
        if member.server.exit_code() is None and member.server.process is not None:
            member.stop()


def new_copy(workroot: Path, copies: list[Member]) -> Member:
    member = Member(Path(tempfile.mkdtemp(prefix="c", dir=workroot)), "copy-0")
    member.prepare()  # the agent's order: directories and my.cnf, then the restore, then mariadbd
    copies.append(member)
    return member


def repository_in(s3: SeaweedFS) -> tuple[ObjectStore, Repository]:
    target = ObjectStoreTarget(BUCKET, endpoint=s3.endpoint, ca_bundle=(s3.workdir / "tls.crt").read_text())
    repository = Repository(target, f"/kuberds/test/shop/{secrets.token_hex(4)}", "shop", encrypted=True)
    return ObjectStore(target, ACCESS_KEY, SECRET_KEY), repository


def fill(member: Member, table: str, ids: range, payload: int = 0) -> None:
    rows = [(i, note(i), secrets.token_hex(payload // 2) if payload else "") for i in ids]
    with member.server.sql._open().cursor() as cursor:
        for start in range(0, len(rows), 200):  # many transactions: many GTIDs
            cursor.executemany(f"INSERT INTO shop.{table} VALUES (%s, %s, %s)", rows[start : start + 200])


def create(member: Member, table: str) -> None:
    member.sql(f"CREATE TABLE shop.{table} (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL, payload TEXT NOT NULL)")


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_a_full_backup_is_sealed_in_s3_and_restores_every_row(source: Member, s3: SeaweedFS, workroot: Path,
                                                              copies: list[Member]) -> None:  # fmt: skip
    store, repository = repository_in(s3)
    create(source, "orders")
    fill(source, "orders", range(1, ROWS + 1), PAYLOAD)
    checksum = source.sql("CHECKSUM TABLE shop.orders")[0]["Checksum"]

    started = time.monotonic()
    manifest = take_full(store, repository, PASSPHRASE, source.server, source.work, source.name,
                         part_bytes=16 * MiB)  # fmt: skip
    backup_seconds = time.monotonic() - started
    assert manifest.encrypted and manifest.gtid and len(manifest.parts) > 1, manifest
    keys = [key for key, _ in store.list(full_prefix(repository))]
    manifest_key = f"{full_prefix(repository)}{manifest.label}/manifest.json"
    assert keys == sorted([p.key for p in manifest.parts] + [manifest_key])
    for part in manifest.parts:  # read raw from the bucket: nothing readable, no mbstream
        raw = store.get_bytes(part.key)
        assert len(raw) == part.bytes and not raw.startswith(MBSTREAM_MAGIC) and note(7).encode() not in raw
    assert store.get_bytes(manifest.parts[0].key).startswith(b"KRDSEAL")

    copy = new_copy(workroot, copies)
    done = restore(RestorePlan(repository, snapshot_set=manifest.label), copy.server.data_dir, copy.work,
                   store=store, passphrase=PASSPHRASE, os_user=copy.server.os_user, config=copy.config)  # fmt: skip
    assert (done.label, done.gtid, done.binlogs) == (manifest.label, manifest.gtid, 0)
    copy.start()
    assert copy.ids("orders") == set(range(1, ROWS + 1))
    assert copy.sql("CHECKSUM TABLE shop.orders")[0]["Checksum"] == checksum
    assert copy.sql("SELECT note FROM shop.orders WHERE id = 7")[0]["note"] == note(7)
    # The restored server goes on from the source's GTIDs, not from 1 again.
    assert GtidPos.parse(copy.sql("SELECT @@gtid_binlog_pos AS p")[0]["p"]) == manifest.position

    baseline = Path(tempfile.mkdtemp(prefix="copytree", dir=workroot)) / "data"
    data_bytes = tree_bytes(source.server.data_dir)
    started = time.monotonic()
    shutil.copytree(source.server.data_dir, baseline)
    copy_seconds = time.monotonic() - started
    shutil.rmtree(baseline.parent)
    backup_rate = manifest.plain_bytes / backup_seconds / MiB
    restore_rate = done.plain_bytes / done.seconds / MiB
    copy_rate = data_bytes / copy_seconds / MiB
    print(
        f"\nMariaDB full backup: {manifest.plain_bytes / MiB:.0f} MiB streamed, {manifest.sealed_bytes / MiB:.1f} "
        f"MiB sealed in {len(manifest.parts)} parts"
    )
    print(f"  backup  (mariadb-backup | seal | S3):            {backup_rate:7.1f} MiB/s in {backup_seconds:.1f} s")
    print(f"  restore (S3 | unseal | mbstream, prepare, start): {restore_rate:7.1f} MiB/s in {done.seconds:.1f} s")
    print(f"  baseline shutil.copytree of the data directory ({data_bytes / MiB:.0f} MiB): {copy_rate:7.1f} MiB/s")
    print(f"  backup/copy {backup_rate / copy_rate:.2f}, restore/copy {restore_rate / copy_rate:.2f}")


def binlog_second(member: Member, gtid: GtidPos) -> datetime:
    """The binlog time of one transaction, from the source's own binlogs."""
    wanted = gtid.domains[0]
    for path in sorted(member.server.data_dir.glob("mariadb-bin.[0-9]*")):
        for found, at in transaction_times(path):
            if found == wanted:
                return at
    raise AssertionError(f"{gtid} is in no binlog")


def test_point_in_time_restore_stops_before_the_target_second(source: Member, s3: SeaweedFS, workroot: Path,
                                                              copies: list[Member]) -> None:  # fmt: skip
    store, repository = repository_in(s3)
    shipper = BinlogShipper(store, repository, PASSPHRASE, source.server.sql, source.server.data_dir, source.work,
                            source.name)  # fmt: skip
    create(source, "pitr")
    batch1, batch2, batch3 = range(1, 501), range(501, 1001), range(1001, 1501)
    fill(source, "pitr", batch1)
    full = take_full(store, repository, PASSPHRASE, source.server, source.work, source.name)
    fill(source, "pitr", batch2)
    ship_once(shipper)
    time.sleep(1.2)
    # One row alone in its second: the target is exactly that second.
    source.sql("INSERT INTO shop.pitr VALUES (9999, 'at the boundary', '')")
    boundary = GtidPos.parse(source.sql("SELECT @@gtid_binlog_pos AS p")[0]["p"])
    time.sleep(1.2)
    fill(source, "pitr", batch3)
    source.sql("FLUSH BINARY LOGS")
    assert ship_once(shipper) >= 1
    assert ship_once(shipper) == 0, "nothing is shipped twice"
    at = binlog_second(source, boundary)
    shipped = list_binlogs(store, repository, source.name)
    assert shipped and all(o.member == source.name for o in shipped)
    raw = store.get_bytes(shipped[-1].key(repository))
    assert raw.startswith(b"KRDSEAL") and note(1001).encode() not in raw, "binlogs are sealed too"

    before = restore(RestorePlan(repository, target_time=f"{at:%Y-%m-%dT%H:%M:%SZ}"),
                     (copy := new_copy(workroot, copies)).server.data_dir, copy.work, store=store,
                     passphrase=PASSPHRASE, os_user=copy.server.os_user, config=copy.config)  # fmt: skip
    assert before.label == full.label and before.binlogs >= 1
    assert before.last_event is not None and before.last_event < at
    copy.start()
    assert copy.ids("pitr") == set(batch1) | set(batch2), "batches 1 and 2; the row at the target second is out"
    assert GtidPos.parse(before.gtid) == GtidPos({0: Gtid(0, 1, boundary.seq(0) - 1)})
    copy.stop()

    # One second later: the boundary row is in (it committed before that time), batch 3 is not.
    later = at + timedelta(seconds=1)
    after = restore(RestorePlan(repository, target_time=later.isoformat()),
                    (copy := new_copy(workroot, copies)).server.data_dir, copy.work, store=store,
                    passphrase=PASSPHRASE, os_user=copy.server.os_user, config=copy.config)  # fmt: skip
    assert (GtidPos.parse(after.gtid), after.last_event) == (boundary, at)
    copy.start()
    assert copy.ids("pitr") == set(batch1) | set(batch2) | {9999}
    assert MariaDBBackups(store, BackupPlan(repository), PASSPHRASE, source.server, source.work,
                          source.name).window().latest >= later  # fmt: skip


def test_a_wrong_passphrase_is_refused_and_retention_keeps_the_newest_full(source: Member, s3: SeaweedFS,
                                                                           workroot: Path, copies: list[Member]
                                                                           ) -> None:  # fmt: skip
    store, repository = repository_in(s3)
    create(source, "kept")
    fill(source, "kept", range(1, 101))
    first = take_full(store, repository, PASSPHRASE, source.server, source.work, source.name)

    copy = new_copy(workroot, copies)
    with pytest.raises(SealError, match="wrong passphrase"):
        restore(RestorePlan(repository, snapshot_set=first.label), copy.server.data_dir, copy.work, store=store,
                passphrase="not the passphrase", os_user=copy.server.os_user, config=copy.config)  # fmt: skip
    assert not any(copy.server.data_dir.iterdir()), "nothing of the refused backup is left"

    shipper = BinlogShipper(store, repository, PASSPHRASE, source.server.sql, source.server.data_dir, source.work,
                            source.name)  # fmt: skip
    fill(source, "kept", range(101, 201))
    ship_once(shipper)
    time.sleep(1.1)  # the two fulls' labels are seconds apart
    second = take_full(store, repository, PASSPHRASE, source.server, source.work, source.name)
    fill(source, "kept", range(201, 301))
    time.sleep(2.1)  # the binlog closes in a later second than the full's (rounded up) consistency
    source.sql("FLUSH BINARY LOGS")
    ship_once(shipper)
    before_expiry = list_binlogs(store, repository)

    plan = BackupPlan(repository, retention_days=1, window="03:00-03:30")
    backups = MariaDBBackups(store, plan, PASSPHRASE, source.server, source.work, source.name)
    later = datetime.now(UTC) + timedelta(days=3)
    step = backups.step(later.replace(hour=12))
    assert (step.action, step.labels) == ("expire", (first.label,))
    assert [m.label for m in list_fulls(store, repository)] == [second.label], "the newest full stays"
    left = list_binlogs(store, repository)
    assert left and len(left) < len(before_expiry), "binlogs the kept full holds are gone"
    assert all(o.end.seq(0) > second.position.seq(0) for o in left)
    assert backups.step(later.replace(hour=12)).action is None
    window = backups.window()
    assert window is not None and window.earliest == second.consistent and window.latest > second.consistent
