"""A user's MariaDB scenarios on the real nodes: a Multi-AZ DBInstance (a primary and a standby
in another zone, semi-synchronous), reached over TLS verified by the writer Service's name;
its primary's pod deleted under writes through the writer Service, with every acknowledged
commit still there; and its deletion refused while protected.

Every connection starts in the client pod and goes through the Services by DNS name."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.kube import ROOT, wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import CLIENT, dbinstance, object_store
from e2e.support import E2E

NAMESPACE = "kuberds-e2e-mariadb"
NAME = "shop"
WRITER = (ROOT / "e2e" / "mariadb_writer.py").read_text()
APPLIED_AT = time.monotonic()
BACKUP = {"backup": {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-mariadb"}, "retentionDays": 1}}


def servers() -> list[dict]:
    global APPLIED_AT
    APPLIED_AT = time.monotonic()
    return [dbinstance(NAMESPACE, NAME, engine="mariadb", multiAZ=True, deletionProtection=True,
                       masterUsername="owner", databaseName="shop", **BACKUP)]  # fmt: skip


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def connection_args(e2e: E2E, instance: str = NAME) -> list[str]:
    """HOST PORT USER PASSWORD DATABASE CA_FILE, as the scripts in the client pod take them."""
    status = e2e.status(instance)
    host, port = status["endpoint"].rsplit(":", 1)
    secret = status["masterUserSecretName"]
    ca = e2e.ca_file(instance, status["certificateSecretName"])
    return [host, port, e2e.secret_value(secret, "username"), e2e.secret_value(secret, "password"), "shop", ca]


def writer(e2e: E2E, seconds: float, stop_file: str, instance: str = NAME, table: str = "writes") -> subprocess.Popen:
    """e2e/mariadb_writer.py in the client pod, through the instance's writer Service (the bench uses it too),
    into a table of the run's own (its ids start at 1)."""
    return e2e.cluster.kubectl_process("exec", "-i", "-n", e2e.namespace, CLIENT, "--", "/opt/kuberds/bin/python",
                                       "-", *connection_args(e2e, instance), str(seconds), stop_file, table,
                                       input=WRITER)  # fmt: skip


def writer_result(e2e: E2E, process: subprocess.Popen, stop_file: str) -> dict:
    """Stops a writer started by `writer` and returns its JSON result (the bench uses it too)."""
    e2e.exec(["touch", stop_file])
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


TLS_SCRIPT = """
import sys, pymysql
host, port, user, password, database, ca = sys.argv[1:7]
c = pymysql.connect(host=host, port=int(port), user=user, password=password, database=database,
                    ssl_ca=ca, ssl_verify_cert=True, ssl_verify_identity=True)
with c.cursor() as cursor:
    cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
    print(cursor.fetchone()[1])
"""


def test_multi_az_mariadb_is_available_across_zones_over_tls(e2e: E2E) -> None:
    status = e2e.wait_available(NAME, timeout=600)
    e2e.record("MariaDB Multi-AZ DBInstance apply → Available", f"{time.monotonic() - APPLIED_AT:.0f}s")
    members = status["members"]
    assert sorted(m["role"] for m in members) == ["primary", "replica"], members
    assert len({m["zone"] for m in members}) == 2, f"primary and standby share a zone: {members}"
    version = e2e.exec(["/opt/kuberds/bin/python", "-", *connection_args(e2e)], input=TLS_SCRIPT).strip()
    assert version.startswith("TLSv1."), version
    e2e.record("MariaDB TLS through the writer Service, name verified", version)


def test_mariadb_primary_pod_deleted_under_writes_loses_no_acknowledged_commit(e2e: E2E) -> None:
    e2e.wait_available(NAME, timeout=600)
    primary = wait_for(lambda: e2e.primary(NAME), timeout=60, what="a primary in status")
    stop_file = "/tmp/stop-mariadb"
    process = writer(e2e, 180, stop_file)
    time.sleep(6)
    deleted = time.monotonic()
    e2e.kubectl("delete", "pod", primary, "-n", e2e.namespace, "--wait=false")
    new = wait_for(lambda: (p := e2e.primary(NAME)) not in (None, primary) and p, timeout=90, interval=0.5,
                   what=f"another primary in status\n{e2e.diagnostics(NAME)}")  # fmt: skip
    e2e.record("MariaDB primary pod deleted → new primary in status (s)", round(time.monotonic() - deleted, 1))
    # Two members, semi-sync that never falls back: commits wait until the deleted member is
    # back as a replica of the new primary.
    e2e.wait_available(NAME, timeout=300)
    time.sleep(8)
    result = writer_result(e2e, process, stop_file)
    e2e.record("MariaDB primary pod deleted under writes", {k: v for k, v in result.items() if k != "samples"})
    assert result["acknowledged"] > 100 and result["lost"] == [], result
    assert new != primary


def test_mariadb_resize_rolls_the_replica_then_switches_over_through_the_agents_tls_api(e2e: E2E) -> None:
    """A new instance class rolls the pods: the replica first, then the operator asks the
    primary's agent (HTTPS, verified with the server's CA) to switch over, then the old primary."""
    e2e.wait_available(NAME, timeout=300)
    primary = wait_for(lambda: e2e.primary(NAME), timeout=60, what="a primary in status")
    stop_file = "/tmp/stop-mariadb-resize"
    process = writer(e2e, 600, stop_file, table="resize")
    time.sleep(5)
    e2e.patch("dbinstance", NAME, {"spec": {"instanceClass": "db.t3.small"}})

    def rolled() -> bool:
        limits = [p["spec"]["containers"][0]["resources"]["limits"]["memory"] for p in e2e.pods(NAME).values()]
        status = e2e.status(NAME)
        return limits == ["2Gi", "2Gi"] and status.get("readyInstances") == 2 and status.get("phase") == "Available"

    wait_for(rolled, timeout=600, interval=3, what=f"both pods on db.t3.small and ready\n{e2e.diagnostics(NAME)}")
    time.sleep(5)
    result = writer_result(e2e, process, stop_file)
    e2e.record("MariaDB resize under writes", {k: v for k, v in result.items() if k != "samples"})
    assert result["acknowledged"] > 100 and result["lost"] == [], result
    events = e2e.kubectl("get", "events", "-n", e2e.namespace, "--field-selector", "reason=Switchover",
                         "-o", "jsonpath={.items[*].message}").stdout  # fmt: skip
    assert f"primary moved from {primary} to" in events, events
    assert e2e.primary(NAME) != primary


SQL_SCRIPT = """
import json, sys, pymysql
host, port, user, password, database, ca = sys.argv[1:7]
c = pymysql.connect(host=host, port=int(port), user=user, password=password, database=database, autocommit=True,
                    ssl_ca=ca, ssl_verify_cert=True, ssl_verify_identity=True)
rows = []
with c.cursor() as cursor:
    for statement in sys.stdin.read().split(";\\n"):
        if statement.strip():
            cursor.execute(statement)
            rows = [[str(v) for v in row] for row in cursor.fetchall()]
print(json.dumps(rows))
"""


def sql(e2e: E2E, statements: str, instance: str = NAME) -> list[list[str]]:
    """Statements separated by ';\\n' through the instance's writer Service; the last one's rows."""
    script = ["/opt/kuberds/bin/python", "-c", SQL_SCRIPT, *connection_args(e2e, instance)]
    return json.loads(e2e.exec(script, input=statements).strip().splitlines()[-1])


def test_mariadb_point_in_time_restore_has_exactly_the_rows_before_the_target(e2e: E2E) -> None:
    e2e.wait_available(NAME, timeout=600)
    sql(e2e, "CREATE TABLE pitr (id INT PRIMARY KEY);\nINSERT INTO pitr SELECT seq FROM seq_1_to_100")
    server_now = datetime.fromisoformat(sql(e2e, "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%dT%H:%i:%s')")[0][0])
    target = server_now.replace(tzinfo=UTC) + timedelta(seconds=2)
    time.sleep(4)
    sql(e2e, "INSERT INTO pitr SELECT seq FROM seq_101_to_150")
    stamp = target.strftime("%Y-%m-%dT%H:%M:%SZ")

    def restorable_past_target() -> bool:
        latest = e2e.status(NAME).get("latestRestorableTime")
        return bool(latest) and datetime.fromisoformat(latest.replace("Z", "+00:00")) > target

    wait_for(restorable_past_target, timeout=400, interval=5, what=f"{NAME} restorable past {stamp}")
    started = time.monotonic()
    e2e.apply(dbinstance(e2e.namespace, "shop-pitr", engine="mariadb", databaseName="shop",
                         restore={"pointInTime": {"source": NAME, "time": stamp}}))  # fmt: skip
    e2e.wait_available("shop-pitr", timeout=600)
    e2e.record("MariaDB point-in-time restore apply → Available", f"{time.monotonic() - started:.0f}s")
    assert sql(e2e, "SELECT COUNT(*), MAX(id) FROM pitr", instance="shop-pitr") == [["100", "100"]]


def test_mariadb_snapshot_then_restore_from_it(e2e: E2E) -> None:
    sql(e2e, "CREATE TABLE snap (id INT PRIMARY KEY);\nINSERT INTO snap SELECT seq FROM seq_1_to_42")
    e2e.apply({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot",
               "metadata": {"name": "shop-manual", "namespace": e2e.namespace},
               "spec": {"source": {"dbInstance": NAME}}})  # fmt: skip
    started = time.monotonic()
    snapshot = e2e.wait_available("shop-manual", timeout=600, kind="dbsnapshot")
    e2e.record(
        "MariaDB DBSnapshot → Available", f"{time.monotonic() - started:.0f}s, {snapshot.get('sizeBytes')} bytes"
    )
    assert snapshot.get("backupID", "").endswith("-manual") and snapshot.get("engine") == "mariadb", snapshot
    sql(e2e, "INSERT INTO snap SELECT seq FROM seq_43_to_50")  # after the snapshot: not restored
    started = time.monotonic()
    e2e.apply(dbinstance(e2e.namespace, "shop-snap", engine="mariadb", databaseName="shop",
                         restore={"fromSnapshot": "shop-manual"}))  # fmt: skip
    e2e.wait_available("shop-snap", timeout=600)
    e2e.record("MariaDB snapshot restore apply → Available", f"{time.monotonic() - started:.0f}s")
    assert sql(e2e, "SELECT COUNT(*), MAX(id) FROM snap", instance="shop-snap") == [["42", "42"]]


def test_mariadb_deletion_is_refused_while_protected(e2e: E2E) -> None:
    refused = e2e.kubectl("delete", "dbinstance", NAME, "-n", e2e.namespace, "--wait=false", check=False)
    assert refused.returncode != 0 and "deletionProtection" in refused.stderr, refused.stderr
