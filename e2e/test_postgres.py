"""A user's PostgreSQL scenarios, end to end through Kubernetes, in order: one Multi-AZ server
is created, written to, failed over and resized; restores and snapshots are made from it; and
deleting is refused or leaves a final snapshot and the volumes.

Every connection starts in the client pod and goes through the servers' Services by DNS name.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.kube import wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbinstance, object_store
from e2e.support import E2E

SOURCE = "orders"
ROLE = "kuberds.io/role"


def backup(e2e: E2E) -> dict:
    return {"backup": {"objectStore": object_store(S3_NAMESPACE), "retentionDays": 1}}


def parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lost(e2e: E2E, instance: str, table: str, acked: list[int]) -> list[int]:
    present = {int(row[0]) for row in e2e.sql(instance, f"SELECT id FROM {table}")}
    return sorted(set(acked) - present)


def first_answer(e2e: E2E, statement: str) -> list[list[str]] | None:
    try:
        return e2e.sql(SOURCE, statement)
    except AssertionError as refused:
        if "accepting TCP/IP connections" in str(refused):
            return None
        raise


def test_multi_az_instance_becomes_available_and_takes_writes(e2e: E2E) -> None:
    started = time.monotonic()
    e2e.apply(dbinstance(e2e.namespace, SOURCE, multiAZ=True, deletionProtection=True, proxy={"enabled": True},
                         **backup(e2e)))  # fmt: skip
    status = e2e.wait_available(SOURCE, timeout=900)
    e2e.record("Multi-AZ DBInstance apply → Available", f"{time.monotonic() - started:.0f}s")
    members = status["members"]
    assert sorted(m["role"] for m in members) == ["primary", "replica"], members
    assert len({m["zone"] for m in members}) == 2, f"primary and standby share a zone: {members}"

    # Through the writer Service's DNS name, as the master user, on the primary.
    # Available follows the pod's readiness; the node's kube-proxy may route the Service a
    # moment later (seen once as a refused connection): the first statement may wait for it.
    rows = wait_for(lambda: first_answer(e2e, "SELECT current_user, pg_is_in_recovery(), current_database()"),
                    timeout=30, interval=1, what="the writer Service routing to the primary")  # fmt: skip
    assert rows == [["dbadmin", "f", "app"]]
    # Over TLS, the certificate verified against the server's CA for the Service's name.
    assert "sslmode=verify-full" in e2e.dsn(SOURCE)
    assert e2e.sql(SOURCE, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [["t"]]
    e2e.sql(SOURCE, "CREATE TABLE first_write (id int PRIMARY KEY); INSERT INTO first_write VALUES (1), (2)")
    # The reader Service reaches the standby; the synchronous commit is flushed there and
    # visible once replayed.
    wait_for(
        lambda: e2e.sql(SOURCE, "SELECT pg_is_in_recovery(), count(*) FROM first_write", reader=True) == [["t", "2"]],
        timeout=30,
        interval=1,
        what="the rows on the standby, through the reader Service",
    )

    def backed_up() -> dict:
        condition = e2e.condition(SOURCE, "BackupHealthy")
        return condition if condition.get("status") == "True" and e2e.status(SOURCE).get(
            "latestRestorableTime") else {}  # fmt: skip

    wait_for(backed_up, timeout=600, interval=5, what="BackupHealthy True and a latestRestorableTime")


def pgbench(e2e: E2E, dsn: str, *args: str) -> str:
    try:
        return e2e.exec(["/usr/lib/postgresql/15/bin/pgbench", *args, dsn], timeout=300)
    except AssertionError as error:  # with the database pods' logs: what ended the clients' sessions
        raise AssertionError(f"{str(error)[:3000]}\n{e2e.diagnostics(SOURCE)}") from None


def tps(e2e: E2E, dsn: str, *args: str) -> float:
    out = pgbench(e2e, dsn, *args)
    return float(next(line for line in out.splitlines() if line.startswith("tps = ")).split()[2])


def test_the_proxy_serves_the_same_database_over_verified_tls(e2e: E2E) -> None:
    wait_for(lambda: e2e.condition(SOURCE, "ProxyReady").get("status") == "True", timeout=300, interval=2,
             what=f"ProxyReady\n{e2e.diagnostics(SOURCE)}")  # fmt: skip
    endpoint = e2e.status(SOURCE)["proxyEndpoint"]
    assert endpoint == f"{SOURCE}-proxy.{e2e.namespace}.svc:5432"
    # The master user's own password, checked by the proxy against the server's verifier; TLS
    # verified for the proxy's name (the server's certificate carries it).
    assert "sslmode=verify-full" in e2e.dsn(SOURCE, endpoint)
    assert e2e.sql(SOURCE, "SELECT current_user, pg_is_in_recovery(), count(*) FROM first_write", proxy=True) == [
        ["dbadmin", "f", "2"]]  # fmt: skip
    direct, proxied = e2e.dsn(SOURCE), e2e.dsn(SOURCE, endpoint)
    pgbench(e2e, direct, "-i", "-s", "1", "-q")
    # Light on purpose: a pgbench that saturates this 2-core machine (the API server, both
    # nodes and the database share it) delays Patroni's leader-lock update past its 2 s retry,
    # and the primary demotes itself. make bench-proxy measures 40 to 1,000 clients.
    options = ["-S", "-c", "8", "-j", "1", "-T", "5", "-n"]
    tps_direct, tps_proxy = tps(e2e, direct, *options), tps(e2e, proxied, *options)
    e2e.record("pgbench -S, 8 clients, 5 s: direct vs through the proxy",
               f"{tps_direct:.0f} vs {tps_proxy:.0f} tps ({tps_proxy / tps_direct:.2f}x)")  # fmt: skip
    connect = [*options, "-C"]  # a new connection per transaction, as short-lived clients do
    tps_direct, tps_proxy = tps(e2e, direct, *connect), tps(e2e, proxied, *connect)
    e2e.record("pgbench -S -C (connection per transaction), 8 clients: direct vs through the proxy",
               f"{tps_direct:.0f} vs {tps_proxy:.0f} tps ({tps_proxy / tps_direct:.2f}x)")  # fmt: skip


def test_deleting_the_primary_pod_moves_the_writer_service_and_loses_nothing(e2e: E2E) -> None:
    old_primary = e2e.primary(SOURCE)
    writer = e2e.writer(SOURCE, seconds=60, table="failover")
    time.sleep(12)
    deleted_at = time.time()
    e2e.kubectl("delete", "pod", old_primary, "-n", e2e.namespace, "--wait=false")
    result = writer.result()
    assert len(result["acked"]) > 100, result
    assert lost(e2e, SOURCE, "failover", result["acked"]) == []
    new_primary = wait_for(lambda: (p := e2e.primary(SOURCE)) and p != old_primary and p, timeout=120,
                           what="a new primary")  # fmt: skip
    gap, acked, failed = result["longest_gap_seconds"], len(result["acked"]), result["error_count"]
    e2e.record("failover (primary pod deleted) → writes again",
               f"{gap:.2f}s longest write gap, {acked} acknowledged, 0 lost, {failed} failed attempts")  # fmt: skip
    # The gap is the deletion's: it starts after the pod was deleted and soon after it
    # (the pod's clock and this machine's; on one host here, NTP-close elsewhere).
    assert deleted_at - 1 <= result["longest_gap_started_epoch"] <= deleted_at + 30, (deleted_at, result)
    assert new_primary != old_primary
    # The deleted pod comes back (same name, same volume) and follows the new primary.
    wait_for(lambda: e2e.status(SOURCE).get("readyInstances") == 2, timeout=300, interval=2,
             what="the old primary back as a ready standby")  # fmt: skip
    assert e2e.pods(SOURCE)[old_primary]["metadata"]["labels"].get(ROLE) == "replica"


class Timeline:
    """Samples the server's pods twice a second: when each pod started terminating, and when
    the primary role moved. A switchover shows as the role moving while both pods run; a
    failover as the role moving only after the primary began to terminate."""

    def __init__(self, e2e: E2E, instance: str):
        self.e2e, self.instance = e2e, instance
        self.events: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        terminating: set[str] = set()  # uids seen with a deletionTimestamp
        primary = None
        while not self._stop.is_set():
            pods = self.e2e.pods(self.instance)
            now = time.monotonic()
            for name, pod in pods.items():
                uid = pod["metadata"]["uid"]
                if pod["metadata"].get("deletionTimestamp") and uid not in terminating:
                    terminating.add(uid)
                    self.events.append((now, "deleting", name))
                if pod["metadata"]["labels"].get(ROLE) == "master" and name != primary:
                    if primary is not None:
                        self.events.append((now, "primary", name))
                    primary = name
            time.sleep(0.5)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def sequence(self) -> list[str]:
        return [f"{kind} {name}" for _, kind, name in self.events]


def test_scaling_replaces_the_standby_then_switches_over_then_the_old_primary(e2e: E2E) -> None:
    primary = e2e.primary(SOURCE)
    standby = next(name for name in e2e.pods(SOURCE) if name != primary)
    started = time.monotonic()
    writer = e2e.writer(SOURCE, seconds=1800, table="resize")  # stopped below, once the roll is done
    pooled = e2e.writer(SOURCE, seconds=1800, table="resize_proxy", proxy=True)
    with Timeline(e2e, SOURCE) as timeline:
        time.sleep(5)
        e2e.patch("dbinstance", SOURCE, {"spec": {"instanceClass": "db.t3.small"}})

        def rolled() -> bool:
            pods = e2e.pods(SOURCE).values()
            limits = [p["spec"]["containers"][0]["resources"]["limits"]["memory"] for p in pods]
            ready = e2e.status(SOURCE).get("readyInstances") == 2
            return ready and limits == ["2Gi", "2Gi"] and e2e.status(SOURCE).get("phase") == "Available"

        try:
            wait_for(rolled, timeout=900, interval=3, what="both pods on db.t3.small and ready")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{e2e.diagnostics(SOURCE)}") from None
    writer.stop()
    pooled.stop()
    result, through_proxy = writer.result(), pooled.result()
    assert lost(e2e, SOURCE, "resize", result["acked"]) == []
    e2e.record(
        "resize (standby, switchover, old primary) under writes",
        f"{result['longest_gap_seconds']:.2f}s longest write gap, {len(result['acked'])} acknowledged, 0 lost",
    )
    # Through the proxy the switchover is a stall, not an error: the operator paused it.
    assert lost(e2e, SOURCE, "resize_proxy", through_proxy["acked"]) == []
    e2e.record("resize under writes through the proxy",
               f"{through_proxy['longest_gap_seconds']:.2f}s longest stall, {len(through_proxy['acked'])} "
               f"acknowledged, {through_proxy['error_count']} errors, 0 lost")  # fmt: skip
    held = [e["message"] for e in e2e.items("events") if e["reason"].startswith("ProxyHeld")]
    assert any(message.startswith("held 2 proxy pod(s)") for message in held), held
    # Offsets from the writers' start, to set beside the errors' own offsets.
    when = [f"{at - started:.1f}s {kind} {name}" for at, kind, name in timeline.events]
    assert through_proxy["error_count"] == 0, (through_proxy["errors"], when, e2e.proxy_logs(SOURCE))
    assert timeline.sequence()[:3] == [f"deleting {standby}", f"primary {standby}", f"deleting {primary}"], (
        timeline.sequence()
    )
    e2e.record("resize: order", " → ".join(timeline.sequence()))
    assert e2e.primary(SOURCE) == standby
    events = e2e.kubectl("get", "events", "-n", e2e.namespace, "--field-selector", "reason=Switchover",
                         "-o", "jsonpath={.items[*].message}").stdout  # fmt: skip
    assert f"primary moved from {primary} to {standby}" in events


def test_point_in_time_restore_has_exactly_the_rows_up_to_the_target(e2e: E2E) -> None:
    e2e.sql(SOURCE, "CREATE TABLE pitr (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());"
                    "INSERT INTO pitr (id) SELECT generate_series(1, 100)")  # fmt: skip
    server_now = parse(e2e.sql(SOURCE, "SELECT to_json(now())#>>'{}'")[0][0])
    # A whole second (the API's time format) inside a quiet gap: rows 1-100 before, 101-150 after.
    target = (server_now + timedelta(seconds=2)).replace(microsecond=0)
    time.sleep(max(0.0, (target - server_now).total_seconds()) + 2)
    e2e.sql(SOURCE, "INSERT INTO pitr (id) SELECT generate_series(101, 150)")
    wait_for(lambda: parse(e2e.status(SOURCE).get("latestRestorableTime", "1970-01-01T00:00:00Z")) > target,
             timeout=300, interval=5, what=f"the source restorable past {rfc3339(target)}")  # fmt: skip

    started = time.monotonic()
    e2e.apply(dbinstance(e2e.namespace, "orders-pitr", **backup(e2e),
                         restore={"pointInTime": {"source": SOURCE, "time": rfc3339(target)}}))  # fmt: skip
    e2e.wait_available("orders-pitr", timeout=900)
    e2e.record("point-in-time restore apply → Available", f"{time.monotonic() - started:.0f}s")
    assert e2e.sql("orders-pitr", "SELECT count(*), max(id) FROM pitr") == [["100", "100"]]
    assert e2e.sql("orders-pitr", "SELECT count(*) FROM first_write") == [["2"]]


def test_snapshot_then_restore_from_it(e2e: E2E) -> None:
    e2e.sql(SOURCE, "CREATE TABLE snap (id int PRIMARY KEY); INSERT INTO snap SELECT generate_series(1, 42)")
    e2e.apply({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot",
               "metadata": {"name": "orders-manual", "namespace": e2e.namespace},
               "spec": {"source": {"dbInstance": SOURCE}}})  # fmt: skip
    started = time.monotonic()
    snapshot = e2e.wait_available("orders-manual", timeout=600, kind="dbsnapshot")
    e2e.record("DBSnapshot → Available", f"{time.monotonic() - started:.0f}s, {snapshot.get('sizeBytes')} bytes")
    assert snapshot.get("backupID") and snapshot.get("snapshotTime")
    e2e.sql(SOURCE, "INSERT INTO snap SELECT generate_series(43, 50)")  # after the snapshot: not restored

    e2e.apply(dbinstance(e2e.namespace, "orders-snap", **backup(e2e), restore={"fromSnapshot": "orders-manual"}))
    e2e.wait_available("orders-snap", timeout=900)
    assert e2e.sql("orders-snap", "SELECT count(*), max(id) FROM snap") == [["42", "42"]]


def test_deleting_is_refused_when_protected_and_otherwise_keeps_a_final_snapshot_and_volumes(e2e: E2E) -> None:
    refused = e2e.kubectl("delete", "dbinstance", SOURCE, "-n", e2e.namespace, "--wait=false", check=False)
    assert refused.returncode != 0 and "deletionProtection" in refused.stderr, refused.stderr
    assert e2e.get("dbinstance", SOURCE) is not None

    claims = {c["metadata"]["name"] for c in e2e.items("pvc", "app.kubernetes.io/instance=orders-pitr")}
    assert claims
    e2e.kubectl("delete", "dbinstance", "orders-pitr", "-n", e2e.namespace, "--wait=false")
    wait_for(lambda: e2e.get("dbinstance", "orders-pitr") is None, timeout=600, interval=3,
             what="orders-pitr deleted after its final snapshot")  # fmt: skip
    finals = [s for s in e2e.items("dbsnapshot") if s["spec"]["source"].get("dbInstance") == "orders-pitr"]
    assert [s["status"]["phase"] for s in finals] == ["Available"], finals
    kept = {c["metadata"]["name"]: c for c in e2e.items("pvc", "app.kubernetes.io/instance=orders-pitr")}
    assert set(kept) == claims and all(c["status"]["phase"] == "Bound" for c in kept.values())


@pytest.fixture(autouse=True)
def _print_section(request: pytest.FixtureRequest) -> None:
    print(f"\n==> {request.node.name}")
