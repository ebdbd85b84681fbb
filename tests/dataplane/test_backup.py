"""Backups on real pgBackRest and a real S3 server (SeaweedFS): PITR, snapshots, retention,
encryption, and an object-store outage."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import kubernetes
import psycopg
from tests.support.dataplane import BUCKET, LocalServer
from tests.support.kube import wait_for

from kuberds.agent.postgres.agent import AGENT_PGPASS
from kuberds.agent.postgres.pgbackrest import AUTOMATED, DELETED_ANNOTATION, SNAPSHOTS, parse_info
from kuberds.contract.settings import RestorePlan


def first_backup_done(server: LocalServer) -> str:
    primary = server.primary()
    return wait_for(lambda: server.agent_status(primary).get("lastBackupTime"), timeout=240, interval=2,
                    what=f"the first automated backup\n{server.logs()}")  # fmt: skip


def insert_marked(conn: psycopg.Connection, first: int, count: int) -> None:
    for i in range(first, first + count):
        conn.execute("INSERT INTO marks (id, at) VALUES (%s, clock_timestamp())", (i,))
        time.sleep(0.05)


def marks(server: LocalServer) -> list[int]:
    with server.connect() as conn:
        return [row[0] for row in conn.execute("SELECT id FROM marks ORDER BY id")]


def pgbackrest(server: LocalServer, *args: str) -> subprocess.CompletedProcess:
    """pgBackRest with the agent's own configuration file and login (the superuser's password
    file: even on the socket, PostgreSQL asks for it), as the postgres user."""
    run = server.primary().workdir / "run"
    argv = ["pgbackrest", f"--config={run / 'pgbackrest.conf'}", f"--stanza={server.name}", *args]
    login = f"PGPASSFILE={run / AGENT_PGPASS}"
    return subprocess.run(["runuser", "-u", "postgres", "--", "env", login, *argv], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_point_in_time_restore_into_a_new_server(servers, s3) -> None:
    source = servers("pitr-src", s3, multi_az=False)
    first_backup_done(source)
    with source.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz)")
        insert_marked(conn, 1, 40)
        # A quiet gap of two seconds; T is inside it, on a whole second.
        time.sleep(1.0)
        target = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        time.sleep(2.0)
        insert_marked(conn, 1001, 40)
        before = [r[0] for r in conn.execute("SELECT id FROM marks WHERE at <= %s ORDER BY id", (target,))]
        after = [r[0] for r in conn.execute("SELECT id FROM marks WHERE at > %s ORDER BY id", (target,))]
    assert before == list(range(1, 41)) and after == list(range(1001, 1041))
    source.archive_now()
    # A newer full backup, taken after T: the restore must start from the one before T.
    assert pgbackrest(source, "--repo=1", "--type=full", "backup").returncode == 0

    plan = RestorePlan(repository=source.backup.repository, target_time=target.strftime("%Y-%m-%dT%H:%M:%SZ"))
    restored = servers("pitr-new", s3, multi_az=False, restore=plan, restore_cipher=source.cipher_pass)
    restored.primary(timeout=240)
    _wait_serving(restored)
    assert marks(restored) == before, "exactly the rows committed up to T"
    # The restored server archives into its own repository, never into the source's.
    assert restored.backup.repository.path != source.backup.repository.path
    first_backup_done(restored)


def _wait_serving(restored: LocalServer) -> None:
    """The restored server holds the source's roles and password until its agent sets its
    own; from the moment the agent reports accountsReady (what the operator waits for before
    counting the primary ready) its own master password must work."""
    primary = restored.primary()
    wait_for(lambda: restored.agent_status(primary).get("accountsReady") is True, timeout=60,
             what=f"the restored primary's agent reporting accountsReady\n{restored.logs()}")  # fmt: skip
    assert _can_connect(restored), "the master user's own password works once accountsReady is reported"


def _can_connect(server: LocalServer) -> bool:
    try:
        with server.connect():
            return True
    except psycopg.OperationalError:
        return False


def test_snapshot_restores_into_an_equal_server_and_survives_retention(servers, s3, cluster, namespace) -> None:
    source = servers("snap-src", s3, multi_az=False, spec={"backup": {"retentionDays": 1}})
    first_backup_done(source)
    with source.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz)")
        insert_marked(conn, 1, 30)
    snapshots = kubernetes.client.CustomObjectsApi(cluster.client())
    snapshots.create_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots", {
        "apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot", "metadata": {"name": "before-migration"},
        "spec": {"source": {"dbInstance": "snap-src"}},
    })  # fmt: skip
    source.grant_snapshots("before-migration")

    def available() -> dict | None:
        snap = snapshots.get_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots",
                                                      "before-migration")  # fmt: skip
        status = snap.get("status") or {}
        return status if status.get("phase") == "Available" else None

    status = wait_for(available, timeout=240, interval=2, what=f"snapshot Available\n{source.logs()}")
    assert status["backupID"].endswith("F") and status["sizeBytes"] > 0 and status["snapshotTime"]
    with source.connect(autocommit=True) as conn:
        insert_marked(conn, 1001, 10)  # after the snapshot: must not be in the restored server

    # Retention: pgBackRest expires automated full backups by time (retentionDays); days
    # cannot be waited for, and its clock cannot be faked (S3 refuses skewed signatures), so
    # the same expiry runs with a count of one: the older automated full goes, with the WAL
    # before the remaining one; the snapshot, in its own repository, stays.
    conf = (source.primary().workdir / "run" / "pgbackrest.conf").read_text()
    assert "repo1-retention-full-type=time" in conf and "repo1-retention-full=1" in conf
    assert pgbackrest(source, "--repo=1", "--type=full", "backup").returncode == 0
    records = parse_info(json.loads(pgbackrest(source, "--output=json", "info").stdout), "snap-src")
    fulls = [r.label for r in records if r.repo == AUTOMATED and r.kind == "full"]
    assert len(fulls) == 2
    result = pgbackrest(source, "--repo=1", "--repo1-retention-full-type=count", "--repo1-retention-full=1", "expire")
    assert result.returncode == 0, result.stderr
    records = parse_info(json.loads(pgbackrest(source, "--output=json", "info").stdout), "snap-src")
    assert [r.label for r in records if r.repo == AUTOMATED] == [fulls[1]], "only the older automated full went"
    assert [r.label for r in records if r.repo == SNAPSHOTS] == [status["backupID"]], "the snapshot stays"

    plan = RestorePlan(repository=source.backup.repository, snapshot_set=status["backupID"])
    restored = servers("snap-new", s3, multi_az=False, restore=plan, restore_cipher=source.cipher_pass)
    restored.primary(timeout=240)
    _wait_serving(restored)
    assert marks(restored) == list(range(1, 31))

    # Deleting the DBSnapshot object removes its backup (the agent serves the deletion).
    snapshots.patch_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots", "before-migration",
                                             {"metadata": {"finalizers": ["kuberds.io/test-hold"]}})  # fmt: skip
    snapshots.delete_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots", "before-migration")
    # Deleted but not approved (no operator here says phase Deleting): the backup stays, as it
    # must while a server may still be restored from it.
    time.sleep(15)
    records = parse_info(json.loads(pgbackrest(source, "--output=json", "info").stdout), "snap-src")
    assert status["backupID"] in [
        r.label for r in records if r.repo == SNAPSHOTS and not r.annotations.get(DELETED_ANNOTATION)
    ], "removed without the operator's go"
    # The operator's approval, as its DBSnapshot finalizer gives it once no restore reads it.
    approval = {"type": "RemovalApproved", "status": "True", "reason": "NoRestoreReadsIt", "message": ""}
    snapshots.patch_namespaced_custom_object_status(
        "kuberds.io", "v1alpha1", namespace, "dbsnapshots", "before-migration", {"status": {"conditions": [approval]}}
    )

    def marked_deleted() -> bool:
        records = parse_info(json.loads(pgbackrest(source, "--output=json", "info").stdout), "snap-src")
        return any(r.annotations.get(DELETED_ANNOTATION) for r in records if r.repo == SNAPSHOTS)

    # The newest full backup of a repository cannot be expired (pgBackRest's rule): it is
    # marked deleted at once and goes when the next snapshot is taken.
    wait_for(marked_deleted, timeout=120, interval=2, what=f"snapshot marked deleted\n{source.logs()}")
    snapshots.create_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots", {
        "apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot", "metadata": {"name": "next"},
        "spec": {"source": {"dbInstance": "snap-src"}},
    })  # fmt: skip
    source.grant_snapshots("before-migration", "next")

    def only_the_next_one() -> list[str]:
        records = parse_info(json.loads(pgbackrest(source, "--output=json", "info").stdout), "snap-src")
        labels = [r.label for r in records if r.repo == SNAPSHOTS]
        return labels if labels and status["backupID"] not in labels else []

    wait_for(only_the_next_one, timeout=180, interval=2, what=f"deleted snapshot removed\n{source.logs()}")
    snapshots.patch_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "dbsnapshots", "before-migration",
                                             {"metadata": {"finalizers": []}})  # fmt: skip


def test_repository_is_encrypted(servers, s3) -> None:
    server = servers("enc", s3, multi_az=False)
    first_backup_done(server)
    prefix = server.backup.repository.path.lstrip("/") + "/automated"
    files = s3.list(BUCKET, prefix)
    info = next(f for f in files if f.endswith("backup/enc/backup.info"))
    content = s3.get(BUCKET, info)
    assert b"[backup:current]" not in content and b"[db]" not in content, "backup.info readable without the key"
    wal = next(f for f in files if "/archive/enc/" in f and f.endswith(".zst"))
    assert not s3.get(BUCKET, wal).startswith(b"\x28\xb5\x2f\xfd"), "WAL stored as plain zstd"
    # And pgBackRest itself cannot read it without the passphrase.
    member = server.primary()
    conf = (member.workdir / "run" / "pgbackrest.conf").read_text()
    keyless = member.workdir / "run" / "keyless.conf"
    keyless.write_text("\n".join(line for line in conf.splitlines() if "cipher-pass" not in line))
    keyless.chmod(0o644)
    result = subprocess.run(["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={keyless}",
                             "--stanza=enc", "--repo=1", "info"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode != 0 and "cipher" in (result.stdout + result.stderr).lower()


def test_object_store_outage_keeps_wal_and_catches_up(servers, s3) -> None:
    server = servers("outage", s3, multi_az=False)
    first_backup_done(server)
    primary = server.primary()
    server.archive_now()
    s3.stop()
    try:
        with server.superuser(primary) as conn:
            conn.execute("CREATE TABLE filler (x text)")
            for _ in range(3):
                conn.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
                conn.execute("SELECT pg_switch_wal()")
        unhealthy = wait_for(lambda: (s := server.agent_status(primary)).get("backupHealthy") is False and s,
                             timeout=120, interval=2, what="BackupHealthy false while S3 is down")  # fmt: skip
        assert unhealthy["backupReason"] in ("ArchiveFailing", "ArchiveLagging")
        with server.superuser(primary) as conn:
            waiting = conn.execute("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")
            assert waiting.fetchone()[0] >= 1, "WAL kept on the volume while the store is down"
    finally:
        s3.start()
    wait_for(lambda: server.agent_status(primary).get("backupHealthy") is True, timeout=240, interval=2,
             what=f"archiving caught up\n{server.logs()}")  # fmt: skip
    server.archive_now()
    prefix = server.backup.repository.path.lstrip("/") + "/automated/archive/outage"
    segments = sorted({f.rsplit("/", 1)[1][:24] for f in s3.list(BUCKET, prefix) if f.endswith(".zst")})
    numbers = [int(s[8:16], 16) * 256 + int(s[16:24], 16) for s in segments if len(s) == 24]
    first = numbers.index(min(n for n in numbers))
    assert numbers[first:] == list(range(numbers[first], numbers[first] + len(numbers) - first)), "a WAL gap"


def test_a_lost_standby_is_rebuilt_from_the_backup_repository(servers, s3) -> None:
    """A standby whose volume is gone restores the newest backup and catches up from the
    archive and the primary, instead of copying everything from the primary."""
    server = servers("rebuild", s3)
    first_backup_done(server)
    server.wait_streaming()
    primary = server.primary()
    standby = next(m for m in server.members if m is not primary)
    server.stop(standby, hard=True)
    shutil.rmtree(standby.data_dir)
    with server.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE after_loss AS SELECT generate_series(1, 1000) AS n")
    server.start(standby)
    server.wait_streaming(timeout=240)
    assert "replica has been created using pgbackrest" in standby.log.read_text()
    with server.connect(standby, autocommit=True) as conn:  # a standby serves reads
        wait_for(lambda: conn.execute("SELECT to_regclass('public.after_loss')").fetchone()[0] is not None,
                 timeout=60, what="the rebuilt standby has the newer table")  # fmt: skip
        assert conn.execute("SELECT count(*) FROM after_loss").fetchone()[0] == 1000
    # The agent reports what a point-in-time restore can reach.
    report = wait_for(lambda: (r := server.agent_status(primary)).get("latestRestorableTime") and r, timeout=120,
                      interval=2, what="latestRestorableTime reported")  # fmt: skip
    assert report["earliestRestorableTime"] <= report["latestRestorableTime"]


def test_failover_leaves_no_hole_in_the_archive(servers, s3) -> None:
    """After a promotion the new primary pushes the segments it received by streaming that
    the repository does not have yet (a standby marks streamed WAL as archived, so without
    this a segment the old primary had not archived would be a hole in point-in-time restore)."""
    server = servers("hole", s3)
    first_backup_done(server)
    server.wait_streaming()
    old = server.primary()
    with server.superuser(old) as conn:
        conn.execute("CREATE TABLE filler (x text)")
        for _ in range(3):
            conn.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
            conn.execute("SELECT pg_switch_wal()")
    os.kill(old.postmaster_pid(), signal.SIGKILL)
    new = next(m for m in server.members if m is not old)
    wait_for(lambda: new.role() == "master", timeout=60, interval=0.5, what="promotion")
    wait_for(lambda: "after promotion:" in new.log.read_text(), timeout=180, interval=2,
             what=f"the new primary checked the old timeline's tail\n{server.logs()}")  # fmt: skip
    server.archive_now()
    prefix = server.backup.repository.path.lstrip("/") + "/automated/archive/hole"
    names = {f.rsplit("/", 1)[1][:24] for f in s3.list(BUCKET, prefix) if f.endswith(".zst")}
    first_timeline = sorted(int(n[8:16], 16) * 256 + int(n[16:24], 16) for n in names if n.startswith("00000001"))
    assert first_timeline == list(range(first_timeline[0], first_timeline[-1] + 1)), "a hole in timeline 1"
    assert any(n.startswith("00000002") for n in names), "the new timeline is archived"
