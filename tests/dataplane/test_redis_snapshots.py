"""Redis RDB snapshots with real processes and a real S3 server: the daily snapshot taken on a
replica in its window, a DBSnapshot taken on request and said Available by the agent, both
sealed (compressed, encrypted) in the bucket; and a new cluster restored from the DBSnapshot
with every key the snapshot had and none written after it. Prints the MiB/s the agents logged."""

from __future__ import annotations

import random
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import yaml
from tests.support.dataplane import BUCKET
from tests.support.dbinstances import GROUP, VERSION
from tests.support.kube import Cluster, wait_for
from tests.support.redis import LocalRedis, StoreAccess
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS

from kuberds.agent.objectstore import ObjectStore
from kuberds.agent.redis.snapshots import DATA_FILE, MANIFEST_FILE, Manifest, snapshots_prefix
from kuberds.builders.rbac import snapshot_grant
from kuberds.contract.settings import RestorePlan

KEYS, VALUE_BYTES = 48_000, 1024


def window_opening_soon() -> str:
    """A daily window that opens at the first whole minute at least 30 s from now: after the
    keys are written, so the day's snapshot has them (one per window is taken)."""
    start = (datetime.now(UTC) + timedelta(seconds=90)).replace(second=0, microsecond=0)
    return f"{start:%H:%M}-{start + timedelta(minutes=60):%H:%M}"


def value(i: int) -> str:
    """Values Redis's own LZF compression cannot shrink much (hex of random bytes): an RDB of
    realistic size for the throughput figure."""
    return random.Random(i).randbytes(VALUE_BYTES // 2).hex()


def fill(client, keys: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"k:{i}", value(i))
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def throughput(local: LocalRedis, pattern: str) -> list[str]:
    found = []
    for member in local.members:
        text = member.log.read_text() if member.log.exists() else ""
        found += [f"{member.name}: {m}" for m in re.findall(pattern, text)]
    return found


def test_snapshots_go_to_s3_sealed_and_restore_into_a_new_cluster(
    cluster: Cluster, namespace: str, workroot: Path, s3: SeaweedFS
) -> None:
    ca = (s3.workdir / "tls.crt").read_text()
    access = StoreAccess(ACCESS_KEY, SECRET_KEY, "the passphrase of this test", ca)
    store = {"bucket": BUCKET, "endpoint": s3.endpoint, "credentialsSecretName": "s3"}
    snapshots = {"retentionDays": 1, "window": window_opening_soon(), "objectStore": store}
    source = LocalRedis(cluster, namespace, "origin", Path(tempfile.mkdtemp(prefix="r", dir=workroot)), 1,
                        snapshots=snapshots, store=access)  # fmt: skip
    repository = source.cache.snapshot_plan.repository
    bucket = ObjectStore(repository.store, ACCESS_KEY, SECRET_KEY)
    objects = kubernetes.client.CustomObjectsApi(cluster.client())
    with source:
        try:
            primary = source.primary(timeout=60)
            source.wait_replicas(1)
            client = source.client(primary, timeout=30)
            fill(client, KEYS)
            assert client.execute_command("WAIT", "1", "10000") == 1

            # The daily snapshot, in the window once it opens, taken on the replica.
            assert not bucket.list(snapshots_prefix(repository)), "nothing before the window opens"
            listed = wait_for(lambda: [k for k, _ in bucket.list(snapshots_prefix(repository))
                                       if k.endswith(MANIFEST_FILE)], timeout=150,
                              what="the daily snapshot's manifest in the bucket")  # fmt: skip
            daily = Manifest.from_json(bucket.get_bytes(listed[0]))
            assert (daily.kind, daily.member, daily.encrypted) == ("daily", "origin-1", True)
            assert daily.plain_bytes > 0.9 * KEYS * VALUE_BYTES, "the RDB has every value"
            sealed = bucket.get_bytes(listed[0].replace(MANIFEST_FILE, DATA_FILE))
            assert len(sealed) == daily.sealed_bytes and value(7).encode()[:64] not in sealed, "sealed, not plain"

            # A DBSnapshot: taken on request, said Available by the agent.
            grant = snapshot_grant(source.cache.owner, ["nightly"])
            snapshot = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBSnapshot", "metadata": {"name": "nightly"},
                        "spec": {"source": {"cacheCluster": "origin"}}}  # fmt: skip
            for obj in [*grant, snapshot]:
                obj["metadata"]["namespace"] = namespace
                obj["metadata"].pop("ownerReferences", None)
            cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(grant))
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "dbsnapshots", snapshot)
            status = wait_for(lambda: (s := objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "dbsnapshots", "nightly").get("status") or {}).get("phase") == "Available"
                and s, timeout=120, what="DBSnapshot nightly Available")  # fmt: skip
            assert status["backupID"].endswith("-manual") and status["engine"] == "redis" and status["sizeBytes"] > 0
            client.set("written-after-the-snapshot", "1")
            taken = throughput(source, r"snapshot \S+: \d+ bytes of RDB, \d+ stored, in [\d.]+ s \([\d.]+ MiB/s\)")
        except BaseException:
            print(source.logs())
            raise

    plan = RestorePlan(repository=repository, snapshot_set=status["backupID"])
    copy = LocalRedis(cluster, namespace, "copy", Path(tempfile.mkdtemp(prefix="r", dir=workroot)), 1,
                      store=access, restore=plan)  # fmt: skip
    with copy:
        try:
            primary = copy.primary(timeout=90)
            copy.wait_replicas(1)
            restored = copy.client(primary, timeout=10)
            assert restored.dbsize() == KEYS, "every key of the snapshot, and nothing written after it"
            assert restored.get("k:4711") == value(4711) and restored.get("written-after-the-snapshot") is None
            replica = next(m for m in copy.members if m is not primary)
            wait_for(lambda: copy.replication(replica).get("master_link_status") == "up", timeout=30,
                     what="the replica done loading what it synced")  # fmt: skip
            assert copy.client(replica, timeout=10).dbsize() == KEYS, "the replica synced the restored data"
            loaded = throughput(copy, r"restored snapshot \S+ \(\d+ bytes of RDB\) in [\d.]+ s, [\d.]+ MiB/s")
        except BaseException:
            print(copy.logs())
            raise
    print(f"\nRedis snapshots ({daily.plain_bytes / 2**20:.0f} MiB RDB, {daily.sealed_bytes / 2**20:.1f} MiB sealed):")
    for line in [*taken, *loaded]:
        print(f"  {line}")
