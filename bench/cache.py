"""Benchmark: CacheClusters through Kubernetes, on the real-node cluster (the e2e suite's setup).

    python bench/cache.py [--runs 3] [--failovers 5] [--keep]
    make bench-cache

Prints figures; asserts nothing about time (it stops only when something is wrong):
- apply → Available for a Memcached cluster of 3 nodes and a Multi-AZ Redis primary + replica,
  each created, measured and deleted `--runs` times;
- Redis failover through the primary endpoint under writes from another pod (e2e/redis_writer.py
  through the `NAME` Service): the primary's pod deleted (a clean stop: the agent hands over)
  and force-deleted with no grace (its containers killed at once: the Lease must lapse), each
  `--failovers` times → the longest time without an acknowledged write, p50/p99, and the
  acknowledged writes lost per failover (Redis replication is asynchronous: counted, not
  assumed zero);
- redis-benchmark (SET and GET, 50 clients) through the primary Service and straight to the
  primary pod's address, in the same run: the Service's cost as a ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.e2e import say, timed  # noqa: E402
from bench.figures import seconds_summary  # noqa: E402
from e2e import environment  # noqa: E402
from e2e.manifests import CLIENT  # noqa: E402
from e2e.support import E2E  # noqa: E402
from tests.support.kube import Cluster, wait_for  # noqa: E402

NAMESPACE = "kuberds-bench-cache"
REDIS = "bench-redis"
WRITER = (ROOT / "e2e" / "redis_writer.py").read_text()
TOOLS = "redis-tools"  # a pod of the redis image: redis-benchmark beside the Services


def cache(name: str, **spec: object) -> dict:
    return {"apiVersion": "kuberds.io/v1alpha1", "kind": "CacheCluster", "metadata": {"name": name,
            "namespace": NAMESPACE}, "spec": {"nodeType": "cache.t3.micro", **spec}}  # fmt: skip


REDIS_SPEC = {"engine": "redis", "replicas": 1, "automaticFailover": True, "multiAZ": True}
MEMCACHED_SPEC = {"engine": "memcached", "numNodes": 3}


def create_and_delete(bench: E2E, name: str, spec: dict) -> float:
    began = time.monotonic()
    bench.apply(cache(name, **spec))
    bench.wait_available(name, timeout=300, kind="cachecluster")
    took = time.monotonic() - began
    bench.kubectl("delete", "cachecluster", name, "-n", NAMESPACE, "--wait=true", timeout=180)
    wait_for(lambda: not bench.items("pods", f"app.kubernetes.io/instance={name}"), timeout=180, interval=1,
             what=f"{name}'s pods gone")  # fmt: skip
    return took


def creates(bench: E2E, runs: int) -> None:
    for label, spec in (("Memcached 3 nodes", MEMCACHED_SPEC), ("Redis primary + replica, Multi-AZ", REDIS_SPEC)):
        times = [create_and_delete(bench, f"bench-create-{i}", spec) for i in range(runs)]
        say(f"    apply -> Available, {label}: {seconds_summary(times)}")


def one_failover(bench: E2E, force: bool, run: int) -> tuple[float, int, int]:
    status = bench.status(REDIS, "cachecluster")
    primary = wait_for(lambda: bench.status(REDIS, "cachecluster").get("currentPrimary"), timeout=120,
                       what="a primary")  # fmt: skip
    wait_for(lambda: bench.status(REDIS, "cachecluster").get("phase") == "Available", timeout=180, interval=1,
             what="both members ready")  # fmt: skip
    host, port = status["endpoint"].rsplit(":", 1)
    password = bench.secret_value(f"{REDIS}-auth", "password")
    stop = f"/tmp/stop-{run}"
    writer = bench.cluster.kubectl_process("exec", "-i", "-n", NAMESPACE, CLIENT, "--", "/opt/kuberds/bin/python",
                                           "-", host, port, password, "90", stop, input=WRITER)  # fmt: skip
    time.sleep(5)
    extra = ["--grace-period=0", "--force"] if force else []
    bench.kubectl("delete", "pod", primary, "-n", NAMESPACE, "--wait=false", *extra)
    wait_for(lambda: bench.status(REDIS, "cachecluster").get("currentPrimary") not in (None, primary), timeout=90,
             interval=0.5, what="a new primary")  # fmt: skip
    time.sleep(6)
    bench.exec(["touch", stop])
    out, err = writer.communicate(timeout=180)
    if writer.returncode != 0:
        raise RuntimeError(f"writer failed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    say(
        f"    {'forced' if force else 'clean'} #{run}: longest gap {result['max_gap_seconds']:.2f}s, "
        f"{result['lost_count']} of {result['acknowledged']} acknowledged writes lost"
    )
    return result["max_gap_seconds"], result["lost_count"], result["acknowledged"]


def redis_cluster(bench: E2E) -> None:
    bench.apply(cache(REDIS, **REDIS_SPEC))
    bench.wait_available(REDIS, timeout=300, kind="cachecluster")


def failovers(bench: E2E, runs: int) -> None:
    for force in (False, True):
        results = [one_failover(bench, force, i) for i in range(runs)]
        what = (
            "force-deleted (no grace: the kubelet kills it after its 2 s minimum)"
            if force
            else "deleted (clean stop: the agent hands over)"
        )
        say(f"    Redis primary pod {what}: longest time without an acknowledged write "
            f"{seconds_summary([r[0] for r in results])}; lost writes per failover {[r[1] for r in results]} "
            f"of ~{sum(r[2] for r in results) // runs} each")  # fmt: skip


def redis_benchmark(bench: E2E) -> None:
    status = bench.status(REDIS, "cachecluster")
    primary = bench.get("pod", status["currentPrimary"])
    password = bench.secret_value(f"{REDIS}-auth", "password")
    bench.apply(tools_pod())
    bench.kubectl("wait", "pod", TOOLS, "-n", NAMESPACE, "--for=condition=Ready", "--timeout=120s", timeout=150)

    def rates(host: str) -> dict[str, float]:
        # The password on stdin, not the command line (it would show in an error message).
        script = 'read -r password; exec redis-benchmark -a "$password" "$@"'
        done = bench.kubectl("exec", "-i", "-n", NAMESPACE, TOOLS, "--", "sh", "-c", script, "sh", "-h", host,
                             "-p", "6379", "-t", "set,get", "-n", "100000", "-c", "50", "-q",
                             input=password + "\n", check=False, timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"redis-benchmark against {host} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+): ([\d.]+) requests per second", done.stdout)}

    through = rates(status["endpoint"].rsplit(":", 1)[0])
    direct = rates(primary["status"]["podIP"])
    for command in ("SET", "GET"):
        if command in through and command in direct:
            ratio = through[command] / direct[command]
            say(f"    redis-benchmark {command} (50 clients): through the Service {through[command]:.0f}/s, "
                f"straight to the pod {direct[command]:.0f}/s, ratio {ratio:.2f}")  # fmt: skip


def tools_pod() -> dict:
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                  "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": TOOLS, "namespace": NAMESPACE}, "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 1, "enableServiceLinks": False,
        "containers": [{"name": TOOLS, "image": environment.IMAGES["redis"], "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "infinity"], "securityContext": restricted,
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="creates per engine")
    parser.add_argument("--failovers", type=int, default=5, help="Redis failovers of each kind (clean, forced)")
    parser.add_argument("--benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="redis-benchmark through the Service and straight to the pod")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="leave the cluster, kuberds and the namespace")
    args = parser.parse_args()
    cluster: Cluster
    cluster, started_here = timed("local cluster (real nodes) and images", environment.local_cluster)
    timed("helm install of kuberds", lambda: environment.install_kuberds(cluster))
    with tempfile.TemporaryDirectory() as workdir:
        s3_ca = timed("S3 server in the cluster", lambda: environment.start_s3(cluster, Path(workdir)))
    bench = timed("namespace and client pod", lambda: environment.prepare_namespace(cluster, NAMESPACE, s3_ca))
    try:
        if args.runs:
            timed("apply -> Available", lambda: creates(bench, args.runs))
        if args.failovers or args.benchmark:
            timed("Redis primary + replica", lambda: redis_cluster(bench))
        if args.failovers:
            timed("Redis failovers", lambda: failovers(bench, args.failovers))
        if args.benchmark:
            timed("redis-benchmark", lambda: redis_benchmark(bench))
    finally:
        if not args.keep:
            bench.kubectl("delete", "cachecluster", "--all", "-n", NAMESPACE, "--wait=true", check=False, timeout=180)
            environment.release_and_delete(bench)
            if started_here:
                environment.stop_local_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
