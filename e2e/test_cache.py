"""CacheClusters on the real nodes. Memcached: three nodes across zones, found through the
configuration endpoint by a cluster client in another pod (ElastiCache Auto Discovery), which
stores and reads keys on every node; scaled in, the client sees the node leave; a node's pod
deleted comes back in its place. Redis: a primary and a replica in different zones; the
primary's pod deleted under writes through the primary endpoint, which follows the new
primary; acknowledged writes counted; a DBSnapshot of it (an encrypted RDB in the S3 server)
restored into a new cluster that has every key."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from tests.support.kube import ROOT, wait_for

from e2e.environment import S3_NAMESPACE
from e2e.manifests import CLIENT, object_store
from e2e.support import E2E

NAMESPACE = "kuberds-e2e-cache"
NAME = "sessions"
REDIS = "queue"
SNAPSHOT_KEYS = 20_000
CLIENT_SCRIPT = (ROOT / "e2e" / "memcached_client.py").read_text()
REDIS_WRITER = (ROOT / "e2e" / "redis_writer.py").read_text()


def servers() -> list[dict]:
    def cache(name: str, spec: dict) -> dict:
        return {
            "apiVersion": "kuberds.io/v1alpha1",
            "kind": "CacheCluster",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"nodeType": "cache.t3.micro", **spec},
        }

    snapshots = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-cache"}}
    return [cache(NAME, {"engine": "memcached", "numNodes": 3}),
            cache(REDIS, {"engine": "redis", "replicas": 1, "automaticFailover": True, "multiAZ": True,
                          "snapshots": snapshots})]  # fmt: skip


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def client(e2e: E2E, prefix: str = "key") -> dict | None:
    """What a cluster client in the client pod discovers and stores through the endpoint
    (None: it failed, as a client does while the endpoint's pod is being replaced: retried)."""
    endpoint = e2e.status(NAME, "cachecluster")["endpoint"]
    host, port = endpoint.rsplit(":", 1)
    done = e2e.kubectl("exec", "-i", "-n", e2e.namespace, CLIENT, "--", "/opt/kuberds/bin/python", "-", host, port,
                       "300", prefix, input=CLIENT_SCRIPT, check=False)  # fmt: skip
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_memcached_nodes_are_discovered_through_the_configuration_endpoint(e2e: E2E) -> None:
    began = time.monotonic()
    status = e2e.wait_available(NAME, timeout=300, kind="cachecluster")
    e2e.record("memcached 3 nodes apply -> Available (s)", round(time.monotonic() - began, 1))
    assert len({m.get("zone") for m in status["members"]}) >= 2, f"nodes in one zone: {status['members']}"

    seen = wait_for(lambda: (c := client(e2e)) and len(c["nodes"]) == 3 and c["hits"] == 300 and c, timeout=60,
                    what="three nodes discovered")  # fmt: skip
    assert seen["hits"] == 300, seen
    assert all(count > 0 for count in seen["stored"].values()), f"a node got no key: {seen['stored']}"

    e2e.patch("cachecluster", NAME, {"spec": {"numNodes": 2}})
    scaled = time.monotonic()
    smaller = wait_for(lambda: (c := client(e2e, "after")) and len(c["nodes"]) == 2 and c, timeout=120,
                       interval=1, what="the scaled-away node gone from discovery")  # fmt: skip
    e2e.record("memcached scale-in -> discovery without the node (s)", round(time.monotonic() - scaled, 1))
    assert smaller["version"] > seen["version"] and smaller["hits"] == 300

    pods = {p["metadata"]["name"]: p for p in e2e.items("pods", f"app.kubernetes.io/instance={NAME}")}
    victim = sorted(pods)[0]
    old = pods[victim]
    e2e.kubectl("delete", "pod", victim, "-n", e2e.namespace, "--wait=true")
    deleted = time.monotonic()

    def replaced() -> str | None:
        pod = e2e.get("pod", victim) or {"metadata": {}}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
        return pod["status"].get("podIP") if ready and pod["metadata"].get("uid") != old["metadata"]["uid"] else None

    new_ip = wait_for(replaced, timeout=120, interval=1, what=f"{victim} replaced and ready")
    back = wait_for(lambda: (c := client(e2e, "back")) and c["hits"] == 300 and any(
        f"|{new_ip}|" in n for n in c["nodes"]) and c, timeout=60, interval=1,
        what="the replaced node in discovery at its address")  # fmt: skip
    e2e.record("memcached pod deleted -> discovery at its new address (s)", round(time.monotonic() - deleted, 1))
    assert [n.split("|")[0] for n in back["nodes"]] == [n.split("|")[0] for n in smaller["nodes"]], (
        "the node kept its place (its name) in the list"
    )
    if new_ip != old["status"]["podIP"]:
        assert back["version"] > smaller["version"], "a new address is a new version"


def redis_writer(e2e: E2E, seconds: float, stop_file: str) -> subprocess.Popen:
    host, port = e2e.status(REDIS, "cachecluster")["endpoint"].rsplit(":", 1)
    password = e2e.secret_value(f"{REDIS}-auth", "password")
    return e2e.cluster.kubectl_process("exec", "-i", "-n", e2e.namespace, CLIENT, "--", "/opt/kuberds/bin/python", "-",
                                       host, port, password, str(seconds), stop_file, input=REDIS_WRITER)  # fmt: skip


def test_redis_primary_endpoint_follows_a_deleted_primary_under_writes(e2e: E2E) -> None:
    status = e2e.wait_available(REDIS, timeout=300, kind="cachecluster")
    primary = wait_for(lambda: e2e.status(REDIS, "cachecluster").get("currentPrimary"), timeout=60,
                       what="a Redis primary in status")  # fmt: skip
    zones = {m.get("zone") for m in e2e.status(REDIS, "cachecluster")["members"]}
    assert len(zones) == 2, f"multiAZ: primary and replica in different zones: {status['members']}"
    stop_file = "/tmp/stop-redis"
    writer = redis_writer(e2e, 120, stop_file)
    time.sleep(6)
    deleted = time.monotonic()
    e2e.kubectl("delete", "pod", primary, "-n", e2e.namespace, "--wait=false")
    new = wait_for(lambda: (p := e2e.status(REDIS, "cachecluster").get("currentPrimary")) not in (None, primary) and p,
                   timeout=60, interval=0.5, what="another Redis primary in status")  # fmt: skip
    e2e.record("redis pod deleted -> new primary in status (s)", round(time.monotonic() - deleted, 1))
    time.sleep(8)
    e2e.exec(["touch", stop_file])
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    e2e.record("redis primary pod deleted under writes", result)
    assert result["acknowledged"] > 100 and result["lost_count"] == 0, result
    assert new != primary


# Run in the client pod: writes (or counts) SNAPSHOT_KEYS keys of 1 KiB through an endpoint.
KEYS_SCRIPT = """
import sys, redis
host, port, password, action, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
client = redis.Redis(host=host, port=port, password=password, socket_timeout=30, decode_responses=True)
if action == "write":
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"snap:{i}", f"{i:08d}" * 128)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    print(client.execute_command("WAIT", "1", "10000"))
else:
    values = client.mget([f"snap:{i}" for i in range(count)])
    print(sum(1 for i, v in enumerate(values) if v == f"{i:08d}" * 128))
"""


def keys(e2e: E2E, cluster: str, action: str) -> int:
    host, port = e2e.status(cluster, "cachecluster")["endpoint"].rsplit(":", 1)
    password = e2e.secret_value(f"{cluster}-auth", "password")
    out = e2e.exec(["/opt/kuberds/bin/python", "-", host, port, password, action, str(SNAPSHOT_KEYS)],
                   input=KEYS_SCRIPT)  # fmt: skip
    return int(out.strip().splitlines()[-1])


def test_a_redis_snapshot_restores_into_a_new_cluster(e2e: E2E) -> None:
    e2e.wait_available(REDIS, timeout=300, kind="cachecluster")
    wait_for(lambda: e2e.status(REDIS, "cachecluster").get("currentPrimary"), timeout=60, what="a Redis primary")
    assert keys(e2e, REDIS, "write") == 1, "the replica acknowledged the keys"
    snapshot = {"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot",
                "metadata": {"name": "queue-snap", "namespace": NAMESPACE},
                "spec": {"source": {"cacheCluster": REDIS}}}  # fmt: skip
    began = time.monotonic()
    e2e.apply(snapshot)
    taken = wait_for(lambda: (s := e2e.status("queue-snap", "dbsnapshot")).get("phase") in ("Available", "Failed")
                     and s, timeout=180, interval=1, what="DBSnapshot queue-snap taken")  # fmt: skip
    assert taken["phase"] == "Available", taken
    e2e.record("redis DBSnapshot apply -> Available (s)", round(time.monotonic() - began, 1))
    e2e.record("redis DBSnapshot size (MiB, sealed)", round(taken["sizeBytes"] / 2**20, 1))

    copy = {"apiVersion": "kuberds.io/v1alpha1", "kind": "CacheCluster",
            "metadata": {"name": "queue-copy", "namespace": NAMESPACE},
            "spec": {"engine": "redis", "nodeType": "cache.t3.micro", "replicas": 1, "automaticFailover": True,
                     "restore": {"fromSnapshot": "queue-snap"}}}  # fmt: skip
    began = time.monotonic()
    e2e.apply(copy)
    e2e.wait_available("queue-copy", timeout=300, kind="cachecluster")
    wait_for(lambda: e2e.status("queue-copy", "cachecluster").get("currentPrimary"), timeout=60,
             what="the restored cluster's primary")  # fmt: skip
    e2e.record("redis restore from DBSnapshot apply -> Available (s)", round(time.monotonic() - began, 1))
    restored = {c["type"]: c for c in e2e.status("queue-copy", "cachecluster")["conditions"]}
    assert restored["Restored"]["status"] == "True", restored["Restored"]
    assert keys(e2e, "queue-copy", "count") == SNAPSHOT_KEYS, "every key of the snapshot, with its value"


TLS_SCRIPT = """
import sys, tempfile, redis
host, port, password, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
    f.write(ca)
client = redis.Redis(host=host, port=port, password=password, ssl=True, ssl_ca_certs=f.name,
                     ssl_cert_reqs="required", ssl_check_hostname=True, socket_timeout=10)
print(client.ping(), client.connection_pool.get_connection("PING")._sock.version())
"""


def test_redis_serves_tls_verified_by_name_against_the_cluster_ca(e2e: E2E) -> None:
    status = e2e.wait_available(REDIS, timeout=300, kind="cachecluster")
    host = status["endpoint"].rsplit(":", 1)[0]
    password, ca = e2e.secret_value(f"{REDIS}-auth", "password"), e2e.secret_value(f"{REDIS}-tls", "ca.crt")
    out = e2e.exec(["/opt/kuberds/bin/python", "-", host, str(status["tlsPort"]), password, ca], input=TLS_SCRIPT)
    assert out.split()[:1] == ["True"], out
    e2e.record("redis TLS through the primary endpoint", out.strip())
