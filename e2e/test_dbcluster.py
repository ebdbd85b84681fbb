"""A DBCluster on the real nodes: a writer and two readers become Available; writes go
through NAME, reads through NAME-ro land on readers, a custom endpoint routes only to its
member; the writer pod deleted under writes loses nothing and the promotion tier decides
where the writer ends; readers scale 2 → 3 → 1."""

from __future__ import annotations

import collections
import time

import pytest
from tests.support.kube import wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbcluster, object_store
from e2e.support import E2E

NAMESPACE = "kuberds-e2e-cluster"
CLUSTER = "ledger"
DBC = "dbcluster"
STORE = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-cluster"}, "retentionDays": 1}
# ledger-2 is promoted first: wherever a failover puts the writer, the operator moves it there.
TIERS = [{"member": 0, "promotionTier": 1}, {"member": 1, "promotionTier": 5}, {"member": 2, "promotionTier": 0}]


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def servers() -> list[dict]:
    return [dbcluster(NAMESPACE, CLUSTER, readers=2, backup=STORE, promotionTiers=TIERS,
                      customEndpoints=[{"name": "reporting", "staticMembers": [2]}])]  # fmt: skip


def status(e2e: E2E) -> dict:
    return e2e.status(CLUSTER, DBC)


def pod_ips(e2e: E2E) -> dict[str, str]:
    return {ip: name for name, pod in e2e.pods(CLUSTER).items() if (ip := (pod.get("status") or {}).get("podIP"))}


def served_by(e2e: E2E, host: str, connections: int) -> collections.Counter:
    """Which pod answered each of `connections` new connections to `host` (kube-proxy picks)."""
    ips = pod_ips(e2e)
    statement = "SELECT inet_server_addr(), pg_is_in_recovery()"
    rows = [e2e.sql(CLUSTER, statement, kind=DBC, host=host)[0] for _ in range(connections)]
    return collections.Counter((ips.get(ip.split("/")[0], ip), recovery) for ip, recovery in rows)


def wait_readers(e2e: E2E, count: int, timeout: float = 600) -> dict:
    return wait_for(lambda: (s := status(e2e)).get("readyReaders") == count and s.get("phase") == "Available" and s,
                    timeout=timeout, interval=2, what=f"{count} ready readers\n{e2e.diagnostics(CLUSTER)}")  # fmt: skip


def test_writer_and_readers_behind_their_endpoints(e2e: E2E) -> None:
    e2e.wait_available(CLUSTER, kind=DBC)
    ready = wait_readers(e2e, 2)
    created = e2e.get(DBC, CLUSTER)["metadata"]["creationTimestamp"]
    available = next(c for c in ready["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    e2e.record("DBCluster 1+2: created → all members ready", f"{created} → {available}")
    assert len({m["zone"] for m in ready["members"]}) == 2, "both real zones are used"
    assert [m.get("promotionTier") for m in ready["members"]] == [1, 5, 0]
    writer = ready["writer"]
    e2e.sql(CLUSTER, "CREATE TABLE entries (id int PRIMARY KEY); INSERT INTO entries SELECT generate_series(1, 100)",
            kind=DBC)  # fmt: skip

    # Reads through NAME-ro land on the readers, all in recovery, spread across both.
    reads = served_by(e2e, ready["readerEndpoint"], 30)
    assert all(recovery == "t" for (_, recovery) in reads), reads
    assert writer not in {pod for pod, _ in reads}, reads
    e2e.record(
        "DBCluster reader endpoint balance (30 connections)", dict(sorted((p, n) for (p, _), n in reads.items()))
    )
    assert len(reads) == 2, f"both readers answer: {reads}"
    assert e2e.sql(CLUSTER, "SELECT count(*) FROM entries", kind=DBC, reader=True) == [["100"]]

    # The custom endpoint routes to its static member only.
    custom = next(e["endpoint"] for e in ready["customEndpoints"] if e["name"] == "reporting")
    assert set(served_by(e2e, custom, 10)) == {("ledger-2", "t")}
    # Writes go to the writer, whatever is behind it.
    assert served_by(e2e, ready["endpoint"], 5) == collections.Counter({(writer, "f"): 5})


def test_deleting_the_writer_loses_nothing_and_the_tier_decides_the_next(e2e: E2E) -> None:
    old_writer = status(e2e)["writer"]
    writer = e2e.writer(CLUSTER, seconds=60, table="failover", kind=DBC)
    time.sleep(12)
    e2e.kubectl("delete", "pod", old_writer, "-n", NAMESPACE, "--wait=false")
    result = writer.result()
    assert len(result["acked"]) > 100, result
    present = {int(r[0]) for r in e2e.sql(CLUSTER, "SELECT id FROM failover", kind=DBC)}
    lost = sorted(set(result["acked"]) - present)
    assert lost == [], f"{len(lost)} acknowledged rows lost: {lost[:20]}"
    e2e.record("DBCluster failover (writer pod deleted) → writes again",
               f"{result['longest_gap_seconds']:.2f}s longest write gap, {len(result['acked'])} acknowledged, "
               "0 lost")  # fmt: skip
    # ledger-2 has the best tier: whoever Patroni promoted, the writer ends there.
    settled = wait_for(lambda: (s := status(e2e)).get("writer") == "ledger-2" and s, timeout=180, interval=2,
                       what=f"the writer on ledger-2 (tier 0)\n{e2e.diagnostics(CLUSTER)}")  # fmt: skip
    events = e2e.items("events", "", NAMESPACE)
    moved = [e["message"] for e in events if e.get("reason") in ("WriterMoved", "PromotionTier")]
    e2e.record("DBCluster after the failover", "; ".join(moved[-3:]))
    assert settled["endpoint"].startswith(f"{CLUSTER}.")
    assert served_by(e2e, settled["endpoint"], 3) == collections.Counter({("ledger-2", "f"): 3})
    wait_readers(e2e, 2, timeout=300)


def test_readers_scale_out_and_in(e2e: E2E) -> None:
    before = {n: p["metadata"]["uid"] for n, p in e2e.pods(CLUSTER).items()}
    e2e.patch(DBC, CLUSTER, {"spec": {"readers": 3}})
    started = time.monotonic()
    wait_readers(e2e, 3)
    e2e.record("DBCluster scale out 2 → 3 readers: ready after", f"{time.monotonic() - started:.0f}s")
    assert e2e.sql(CLUSTER, "SELECT count(*) FROM entries", kind=DBC, host=f"{CLUSTER}-ro:5432") == [["100"]]

    e2e.patch(DBC, CLUSTER, {"spec": {"readers": 1}})
    wait_for(lambda: len(e2e.pods(CLUSTER)) == 2 and status(e2e).get("readyReaders") == 1, timeout=300, interval=2,
             what=f"two members left\n{e2e.diagnostics(CLUSTER)}")  # fmt: skip
    settled = wait_for(lambda: (s := status(e2e)).get("phase") == "Available" and s, timeout=120, interval=2,
                       what="Available with two members")  # fmt: skip
    writer = settled["writer"]
    assert writer in ("ledger-0", "ledger-1"), f"the writer stays among the members left: {writer}"
    # Scaling changes no pod template: the members that stay are the pods they were.
    assert {n: p["metadata"]["uid"] for n, p in e2e.pods(CLUSTER).items()} == {
        n: before[n] for n in ("ledger-0", "ledger-1")
    }
    claims = {c["metadata"]["name"] for c in e2e.items("pvc", f"app.kubernetes.io/instance={CLUSTER}", NAMESPACE)}
    wait_for(lambda: not {"data-ledger-2", "data-ledger-3"} & {
        c["metadata"]["name"] for c in e2e.items("pvc", f"app.kubernetes.io/instance={CLUSTER}", NAMESPACE)},
        timeout=120, what=f"the removed members' volumes to go (had {claims})")  # fmt: skip
    e2e.sql(CLUSTER, "INSERT INTO entries VALUES (101)", kind=DBC)
    assert e2e.sql(CLUSTER, "SELECT count(*) FROM entries", kind=DBC) == [["101"]]


def test_snapshot_restore_and_clone_into_new_clusters(e2e: E2E) -> None:
    """The shared backup code serves a DBCluster: a DBSnapshot taken by its writer's agent,
    restored into a new cluster, and a clone (cloneFrom) at the source's latest moment."""
    e2e.sql(CLUSTER, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept SELECT generate_series(1, 42)",
            kind=DBC)  # fmt: skip
    e2e.apply({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot",
               "metadata": {"name": "ledger-manual", "namespace": NAMESPACE},
               "spec": {"source": {"dbCluster": CLUSTER}}})  # fmt: skip
    snapshot = e2e.wait_available("ledger-manual", timeout=600, kind="dbsnapshot")
    assert snapshot.get("backupID"), snapshot
    # Rows after the snapshot: the clone, made once the archive holds them, has them too.
    e2e.sql(CLUSTER, "INSERT INTO kept SELECT generate_series(43, 50)", kind=DBC)
    ((inserted,),) = e2e.sql(CLUSTER, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                             kind=DBC)  # fmt: skip
    # (The master user may not force a WAL switch, as on RDS: archive_timeout does within a minute.)
    wait_for(lambda: status(e2e).get("latestRestorableTime", "") > inserted, timeout=180, interval=2,
             what=f"the source restorable past {inserted}")  # fmt: skip
    e2e.apply(dbcluster(NAMESPACE, "ledger-snap", readers=0, backup=STORE, restore={"fromSnapshot": "ledger-manual"}),
              dbcluster(NAMESPACE, "ledger-clone", readers=0, backup=STORE, cloneFrom=CLUSTER))  # fmt: skip
    started = time.monotonic()
    e2e.wait_available("ledger-snap", timeout=900, kind=DBC)
    e2e.wait_available("ledger-clone", timeout=900, kind=DBC)
    e2e.record("DBCluster snapshot restore and clone: both Available after", f"{time.monotonic() - started:.0f}s")
    assert e2e.sql("ledger-snap", "SELECT count(*), max(id) FROM kept", kind=DBC) == [["42", "42"]]
    assert e2e.sql("ledger-clone", "SELECT count(*), max(id) FROM kept", kind=DBC) == [["50", "50"]]
