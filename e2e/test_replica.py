"""A read replica on the real nodes: made from its source's backup, serving reads through its
own endpoint within its reported lag, then promoted into a writable server with its own
backups, the source untouched."""

from __future__ import annotations

import time

import pytest
from tests.support.kube import wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbinstance, object_store
from e2e.support import E2E

NAMESPACE = "kuberds-e2e-replica"
SOURCE, REPLICA = "books", "books-rr"
RR = "readreplica"
STORE = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-replica"}, "retentionDays": 1}


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def servers() -> list[dict]:
    return [dbinstance(NAMESPACE, SOURCE, backup=STORE, databaseName="library")]


def replica(**spec: object) -> dict:
    return {"apiVersion": "kuberds.io/v1alpha1", "kind": "ReadReplica",
            "metadata": {"name": REPLICA, "namespace": NAMESPACE},
            "spec": {"source": {"dbInstance": SOURCE}, "storage": {"size": "1Gi"}, "backup": STORE,
                     **spec}}  # fmt: skip


def test_replica_serves_reads_then_promotes_into_a_writable_server(e2e: E2E) -> None:
    e2e.wait_available(SOURCE)
    e2e.sql(SOURCE, "CREATE TABLE books (id int PRIMARY KEY); INSERT INTO books SELECT generate_series(1, 500)")
    # Seeded from the source's backup: wait for its first one.
    wait_for(lambda: e2e.status(SOURCE).get("latestRestorableTime"), timeout=300, interval=3,
             what="the source's first backup")  # fmt: skip

    started = time.monotonic()
    e2e.apply(replica())
    e2e.wait_available(REPLICA, timeout=600, kind=RR)
    wait_for(lambda: e2e.condition(REPLICA, "Replicating", RR).get("status") == "True", timeout=120, interval=1,
             what=f"the replica streaming\n{e2e.diagnostics(REPLICA)}")  # fmt: skip
    e2e.record("read replica: apply → replicating", f"{time.monotonic() - started:.0f}s")
    logs = e2e.kubectl("logs", "-n", NAMESPACE, f"{REPLICA}-0", "-c", "postgres").stdout
    assert "replica has been created using kuberds_seed" in logs, "seeded from the source's backup"
    assert e2e.sql(REPLICA, "SELECT count(*) FROM books", kind=RR) == [["500"]]
    assert e2e.sql(REPLICA, "SELECT pg_is_in_recovery()", kind=RR) == [["t"]]

    # New rows on the source show up through the replica's endpoint within its lag.
    e2e.sql(SOURCE, "INSERT INTO books SELECT generate_series(501, 600)")
    inserted = time.monotonic()
    wait_for(lambda: e2e.sql(REPLICA, "SELECT count(*) FROM books", kind=RR) == [["600"]], timeout=30,
             interval=0.2, what="the new rows on the replica")  # fmt: skip
    e2e.record("read replica: a source commit readable on the replica after", f"{time.monotonic() - inserted:.2f}s")
    lag = e2e.status(REPLICA, RR).get("replicaLagSeconds")
    assert lag is not None and lag < 5, lag
    e2e.record("read replica: reported lag, idle source", f"{lag} s")

    promoted = time.monotonic()
    e2e.patch(RR, REPLICA, {"spec": {"promote": True}})
    status = wait_for(lambda: (s := e2e.status(REPLICA, RR)).get("promotedAt") and s, timeout=180, interval=1,
                      what=f"the replica promoted\n{e2e.diagnostics(REPLICA)}")  # fmt: skip

    def writable() -> bool:
        try:
            e2e.sql(REPLICA, "INSERT INTO books VALUES (-1)", kind=RR)
            return True
        except AssertionError:
            return False

    wait_for(writable, timeout=120, interval=1, what="a write accepted by the promoted replica")
    e2e.record("read replica: promote → writable", f"{time.monotonic() - promoted:.1f}s")
    assert e2e.condition(REPLICA, "Replicating", RR)["reason"] == "Promoted" and status["promotedAt"]
    assert e2e.sql(SOURCE, "SELECT count(*) FROM books WHERE id = -1") == [["0"]], "the source is untouched"
    # Its own backups: the first full backup lands in its own repository.
    wait_for(lambda: e2e.status(REPLICA, RR).get("latestRestorableTime"), timeout=300, interval=3,
             what=f"the promoted replica's first backup\n{e2e.diagnostics(REPLICA)}")  # fmt: skip
