"""Storage on volumes of a real size (the local provisioner's XFS filesystems on loop devices,
grown online): storage autoscaling grows a filling volume, waits out its cooldown and stops at
maxSize; a volume filled to the brim makes the server StorageFull, and raising storage.size
brings it back with every acknowledged row; with the object store down, WAL that cannot be
archived fills the volume, and what the server says on the way is the point.

The operator runs with seconds for RDS's minutes and hours (e2e.environment.STORAGE_AUTOSCALING).
Volumes are filled with a ballast file in the data volume (fallocate: instant, and the
filesystem cannot tell it from a table); the full-volume case fills the last of it with rows.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from tests.support.kube import wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbinstance, object_store
from e2e.support import E2E

NAMESPACE = "kuberds-e2e-storage"
GROWER, BRIM, ARCHIVER = "grower", "brim", "archiver"
MOUNT = "/var/lib/postgresql/data"  # the data volume in the database pod
# 8,000 rows of 2 KB of random text (incompressible): 16 MB of table and as much WAL.
FILL_16MB = (
    "INSERT INTO filler (payload) SELECT (SELECT string_agg(md5(random()::text || g || n), '') "
    "FROM generate_series(1, 64) n) FROM generate_series(1, 8000) g"
)
GIB = 2**30


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def servers() -> list[dict]:
    autoscaling = {"maxSize": "3Gi", "freeSpaceThresholdPercent": 50}
    store = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-storage"}, "retentionDays": 1}
    return [dbinstance(NAMESPACE, GROWER, storage={"size": "1Gi", "autoscaling": autoscaling}),
            dbinstance(NAMESPACE, BRIM, storage={"size": "1Gi"}),
            dbinstance(NAMESPACE, ARCHIVER, storage={"size": "1Gi"}, backup=store)]  # fmt: skip


def in_pod(e2e: E2E, pod: str, *argv: str) -> str:
    return e2e.kubectl("exec", "-n", e2e.namespace, pod, "-c", "postgres", "--", *argv).stdout


def filesystem(e2e: E2E, pod: str) -> tuple[int, int]:
    """(size, available) of the data volume as the pod sees it, in bytes."""
    out = in_pod(e2e, pod, "df", "-B1", "--output=size,avail", MOUNT)
    size, available = out.splitlines()[-1].split()
    return int(size), int(available)


def fill_to(e2e: E2E, pod: str, free_share: float, name: str) -> None:
    """Adds a ballast file that leaves `free_share` of the volume free."""
    size, available = filesystem(e2e, pod)
    ballast = available - int(size * free_share)
    assert ballast > 0, f"already below {free_share:.0%} free: {available} of {size}"
    in_pod(e2e, pod, "fallocate", "-l", str(ballast), f"{MOUNT}/{name}")


def claims(e2e: E2E, instance: str) -> list[str]:
    items = e2e.items("pvc", f"app.kubernetes.io/instance={instance}")
    return sorted(c["spec"]["resources"]["requests"]["storage"] for c in items)


def condition_seen(e2e: E2E, instance: str, reason: str, timeout: float) -> dict:
    def seen() -> dict | None:
        condition = e2e.condition(instance, "StorageAutoscaling")
        return condition if condition.get("reason") == reason else None

    return wait_for(seen, timeout=timeout, interval=1, what=f"StorageAutoscaling {reason} on {instance}")


def test_autoscaling_grows_a_filling_volume_online_then_after_the_cooldown_then_stops_at_max_size(e2e: E2E) -> None:
    e2e.wait_available(GROWER, timeout=600)
    pod = f"{GROWER}-0"
    uid = e2e.get("pod", pod)["metadata"]["uid"]
    assert filesystem(e2e, pod)[0] <= GIB, "the volume is its claim's size, not the machine's disk"
    e2e.sql(GROWER, "CREATE TABLE kept (id int PRIMARY KEY, note text)")
    e2e.sql(GROWER, "INSERT INTO kept SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
    writer = e2e.writer(GROWER, seconds=600, table="during_growth")
    try:
        fill_to(e2e, pod, 0.4, "ballast-1")  # below the 50 % threshold
        crossed = time.monotonic()
        wait_for(lambda: filesystem(e2e, pod)[0] > 1.5 * GIB, timeout=120, interval=1,
                 what=f"the filesystem grown in the pod\n{e2e.diagnostics(GROWER)}")  # fmt: skip
        grown = time.monotonic() - crossed
        assert claims(e2e, GROWER) == ["2Gi"]
    finally:
        writer.stop()
    written = writer.result()
    e2e.record("storage autoscaling: threshold crossed → grown filesystem seen in the pod",
               f"{grown:.1f}s (of which 10s the sustained-low rule)")  # fmt: skip
    e2e.record("storage autoscaling: longest write gap across the online grow",
               f"{written['longest_gap_seconds']:.2f}s, {len(written['acked'])} writes, "
               f"{written['error_count']} errors")  # fmt: skip
    assert written["error_count"] == 0, written["errors"]
    storage = e2e.status(GROWER)["storage"]
    assert storage["autoscaledSize"] == "2Gi" and storage["maxSize"] == "3Gi", storage
    events = [e["message"] for e in e2e.items("events") if e["reason"] == "StorageAutoscaled"]
    assert any("from 1Gi to 2Gi" in m for m in events), events

    # Low again at once: the cooldown (40 s here, 6 h by default) holds the next growth.
    fill_to(e2e, pod, 0.4, "ballast-2")
    cooling = condition_seen(e2e, GROWER, "Cooldown", timeout=60)
    assert cooling["status"] == "False" and "may grow again from" in cooling["message"]
    wait_for(lambda: claims(e2e, GROWER) == ["3Gi"], timeout=120, interval=2, what="the second growth, to 3Gi")
    wait_for(lambda: filesystem(e2e, pod)[0] > 2.5 * GIB, timeout=60, interval=1, what="3Gi seen in the pod")

    # At maxSize it grows no more, and says so.
    fill_to(e2e, pod, 0.4, "ballast-3")
    at_max = condition_seen(e2e, GROWER, "AtMaxSize", timeout=60)
    assert at_max["status"] == "False" and "maxSize 3Gi" in at_max["message"]
    assert claims(e2e, GROWER) == ["3Gi"]
    stateful_set = e2e.get("statefulset", GROWER)
    assert stateful_set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert e2e.get("pod", pod)["metadata"]["uid"] == uid, "growing replaced no pod"
    assert e2e.sql(GROWER, "SELECT count(*) FROM kept") == [["1000"]]


def test_a_full_volume_is_storage_full_and_a_larger_size_brings_writes_back_with_every_row(e2e: E2E) -> None:
    e2e.wait_available(BRIM, timeout=600)
    pod = f"{BRIM}-0"
    e2e.sql(BRIM, "CREATE TABLE filler (id serial, payload text)")
    writer = e2e.writer(BRIM, seconds=900, table="acknowledged")
    try:
        fill_to(e2e, pod, 0.12, "ballast")
        refusal = fill_until_refused(e2e, BRIM)
        full = wait_for(lambda: (c := e2e.condition(BRIM, "StorageFull")).get("status") == "True" and c,
                        timeout=120, interval=1, what=f"StorageFull\n{e2e.diagnostics(BRIM)}")  # fmt: skip
        assert "writes fail" in full["message"] and "raise storage.size" in full["message"], full
        assert e2e.status(BRIM)["phase"] == "StorageFull"
        raised = time.monotonic()
        e2e.patch("dbinstance", BRIM, {"spec": {"storage": {"size": "2Gi"}}})

        def writes_again() -> bool:
            return e2e.condition(BRIM, "StorageFull").get("status") == "False"

        wait_for(writes_again, timeout=300, interval=2, what=f"StorageFull False\n{e2e.diagnostics(BRIM)}")
        e2e.sql(BRIM, "INSERT INTO filler (payload) VALUES ('after')")
        recovered = time.monotonic() - raised
        # The writer's own inserts flow again (it retried through the outage).
        before = int(e2e.sql(BRIM, "SELECT count(*) FROM acknowledged")[0][0])
        wait_for(lambda: int(e2e.sql(BRIM, "SELECT count(*) FROM acknowledged")[0][0]) > before + 10, timeout=60,
                 interval=1, what="the writer's inserts committing again")  # fmt: skip
    finally:
        writer.stop()
    result = writer.result()
    present = {int(row[0]) for row in e2e.sql(BRIM, "SELECT id FROM acknowledged")}
    assert sorted(set(result["acked"]) - present) == [], "acknowledged rows lost"
    e2e.record("disk full → storage.size raised → writes again",
               f"{recovered:.0f}s; {len(result['acked'])} acknowledged, 0 lost; refused with: "
               f"{refusal[:120]}")  # fmt: skip


def test_with_the_object_store_down_unarchived_wal_fills_the_volume_and_every_signal_says_so(e2e: E2E) -> None:
    """WAL is never dropped to keep a server up (a restore point is worth more): the outcome
    is explicit instead. BackupHealthy goes False once segments wait a minute unarchived,
    while there is still room; StorageLow warns at 10 % free; StorageFull names the
    unarchived WAL (PostgreSQL stops when it cannot write WAL: the agent counts the waiting
    segments on disk). With the store back and a larger volume it writes again and archives
    what it kept."""
    e2e.wait_available(ARCHIVER, timeout=600)
    wait_for(lambda: e2e.condition(ARCHIVER, "BackupHealthy").get("status") == "True", timeout=600, interval=5,
             what=f"BackupHealthy True\n{e2e.diagnostics(ARCHIVER)}")  # fmt: skip
    pod = f"{ARCHIVER}-0"
    e2e.sql(ARCHIVER, "CREATE TABLE filler (id serial, payload text)")
    e2e.sql(ARCHIVER, "CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    e2e.sql(ARCHIVER, "INSERT INTO ticks DEFAULT VALUES")
    selector = e2e.get("service", "s3", S3_NAMESPACE)["spec"]["selector"]
    e2e.kubectl("patch", "service", "s3", "-n", S3_NAMESPACE, "--type=merge", "-p",
                '{"spec": {"selector": {"app.kubernetes.io/name": "nowhere"}}}')  # fmt: skip
    try:
        # A little WAL first, which cannot be archived: the alert comes while there is room
        # (in a day the volume would take hours to fill; here it is filled in seconds).
        for _ in range(3):
            e2e.sql(ARCHIVER, FILL_16MB)
        unhealthy = wait_for(lambda: (c := e2e.condition(ARCHIVER, "BackupHealthy")).get("status") == "False" and c,
                             timeout=150, interval=1, what="BackupHealthy False while the store is down")  # fmt: skip
        assert unhealthy["reason"] in ("ArchiveStalled", "ArchiveFailing"), unhealthy
        fill_to(e2e, pod, 0.3, "ballast")
        refusal = fill_until_refused(e2e, ARCHIVER)  # every row's WAL is kept: it cannot be archived
        full = wait_for(lambda: (c := e2e.condition(ARCHIVER, "StorageFull")).get("status") == "True" and c,
                        timeout=120, interval=1, what=f"StorageFull\n{e2e.diagnostics(ARCHIVER)}")  # fmt: skip
        assert full["reason"] == "UnarchivedWal" and "WAL segments are kept until they are archived" in full["message"]
        warnings = [e["reason"] for e in sorted(e2e.items("events"), key=lambda e: e.get("lastTimestamp") or "")
                    if e["type"] == "Warning" and e["involvedObject"]["name"] == ARCHIVER]  # fmt: skip
        assert "LowFreeSpace" in warnings and "UnarchivedWal" in warnings, warnings
        in_order = ", ".join(dict.fromkeys(warnings))
        e2e.record("object store down: WAL kept until the 1Gi volume filled",
                   f"refused with: {refusal[:160]}; Warnings in order: {in_order}")  # fmt: skip
    finally:
        e2e.kubectl("patch", "service", "s3", "-n", S3_NAMESPACE, "--type=merge", "-p",
                    json.dumps({"spec": {"selector": selector}}))  # fmt: skip
    e2e.patch("dbinstance", ARCHIVER, {"spec": {"storage": {"size": "2Gi"}}})
    wait_for(lambda: e2e.condition(ARCHIVER, "StorageFull").get("status") == "False", timeout=300, interval=2,
             what=f"StorageFull False\n{e2e.diagnostics(ARCHIVER)}")  # fmt: skip
    wait_for(lambda: e2e.condition(ARCHIVER, "BackupHealthy").get("status") == "True", timeout=300, interval=5,
             what=f"archiving caught up\n{e2e.diagnostics(ARCHIVER)}")  # fmt: skip
    e2e.sql(ARCHIVER, "INSERT INTO ticks DEFAULT VALUES")
    assert int(e2e.sql(ARCHIVER, "SELECT count(*) FROM ticks")[0][0]) == 2


def fill_until_refused(e2e: E2E, instance: str) -> str:
    """16 MB statements until the server refuses them."""
    for _ in range(100):
        try:
            e2e.sql(instance, FILL_16MB)
        except AssertionError as refused:
            return psql_said(refused)
    raise AssertionError(f"100 statements of 16 MB fitted on a 1Gi volume\n{e2e.diagnostics(instance)}")


def psql_said(refused: AssertionError) -> str:
    """psql's own words: what follows kubectl's account of the failed command."""
    stderr = re.split(r" failed \(\d+\): ", str(refused), maxsplit=1)[-1]
    return "; ".join(line.strip() for line in stderr.splitlines() if line.strip())[:300]
