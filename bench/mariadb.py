"""Benchmark: MariaDB DBInstances through Kubernetes, on the real-node cluster (the e2e suite's
setup), beside `make bench-e2e`'s PostgreSQL figures.

    python bench/mariadb.py [--runs 3] [--failovers 5] [--keep]
    make bench-mariadb

Prints figures; asserts nothing about time (it stops only when something is wrong: a server
never Available, an acknowledged commit lost):
- apply → Available for a Single-AZ and a Multi-AZ DBInstance, each created, measured and
  deleted `--runs` times;
- failover through the writer Service under inserts from the client pod (e2e/mariadb_writer.py,
  TLS verified by name): the primary's pod deleted (a clean stop: its agent switches over)
  and force-deleted with no grace (the Lease must lapse), each `--failovers` times → the
  longest time without an acknowledged commit, p50/p99, and the acknowledged commits lost
  (semi-synchronous replication: must be zero). With two members, commits wait until the
  deleted member is back as a replica: the gap includes its restart.
"""

from __future__ import annotations

import argparse
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
from e2e.manifests import dbinstance  # noqa: E402
from e2e.support import E2E  # noqa: E402
from e2e.test_mariadb import writer as e2e_writer  # noqa: E402
from e2e.test_mariadb import writer_result  # noqa: E402
from tests.support.kube import Cluster, wait_for  # noqa: E402

NAMESPACE = "kuberds-bench-mariadb"
NAME = "bench-shop"


def server(name: str, multi_az: bool) -> dict:
    return dbinstance(NAMESPACE, name, engine="mariadb", multiAZ=multi_az, skipFinalSnapshot=True,
                      databaseName="shop")  # fmt: skip


def create_and_delete(bench: E2E, name: str, multi_az: bool) -> float:
    began = time.monotonic()
    bench.apply(server(name, multi_az))
    bench.wait_available(name, timeout=600)
    took = time.monotonic() - began
    bench.kubectl("delete", "dbinstance", name, "-n", NAMESPACE, "--wait=true", timeout=300)
    bench.kubectl("delete", "pvc", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={name}", "--wait=true",
                  "--timeout=120s", timeout=140)  # fmt: skip
    wait_for(lambda: not bench.pods(name), timeout=300, interval=1, what=f"{name}'s pods gone")
    return took


def creates(bench: E2E, runs: int) -> None:
    for label, multi_az in (("Single-AZ", False), ("Multi-AZ", True)):
        times = [create_and_delete(bench, f"bench-{label.lower()}-{i}", multi_az) for i in range(runs)]
        say(f"    MariaDB {label} apply -> Available: {seconds_summary(times)}")


def one_failover(bench: E2E, force: bool, run: int) -> tuple[float, int]:
    bench.wait_available(NAME, timeout=600)
    primary = wait_for(lambda: bench.primary(NAME), timeout=120, what="a primary")
    kind = "forced" if force else "clean"
    stop = f"/tmp/stop-{kind}-{run}"
    writer = e2e_writer(bench, 180, stop, NAME, table=f"writes_{kind}_{run}")
    time.sleep(6)
    extra = ["--grace-period=0", "--force"] if force else []
    bench.kubectl("delete", "pod", primary, "-n", NAMESPACE, "--wait=false", *extra)
    wait_for(lambda: bench.primary(NAME) not in (None, primary), timeout=120, interval=0.5, what="a new primary")
    bench.wait_available(NAME, timeout=600)  # the deleted member back as a replica: commits flow again
    time.sleep(6)
    result = writer_result(bench, writer, stop)
    if not result["acknowledged"]:  # a writer that never wrote measured nothing
        raise SystemExit(f"{kind} #{run}: no commit acknowledged: {result['samples']}")
    if result["lost"]:
        raise SystemExit(f"{kind} #{run}: acknowledged commits lost: {result['lost'][:20]}")
    say(f"    {kind} #{run}: longest gap {result['longest_gap_seconds']:.2f}s, "
        f"0 of {result['acknowledged']} acknowledged commits lost")  # fmt: skip
    return result["longest_gap_seconds"], result["acknowledged"]


def failovers(bench: E2E, runs: int) -> None:
    bench.apply(server(NAME, True))
    bench.wait_available(NAME, timeout=600)
    for force in (False, True):
        results = [one_failover(bench, force, i) for i in range(runs)]
        what = "force-deleted (no grace: the Lease lapses)" if force else "deleted (clean stop: a switchover)"
        gaps, each = seconds_summary([r[0] for r in results]), sum(r[1] for r in results) // runs
        say(
            f"    MariaDB primary pod {what}: longest time without an acknowledged commit {gaps}; "
            f"0 lost of ~{each} each"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="creates per shape (Single-AZ, Multi-AZ)")
    parser.add_argument("--failovers", type=int, default=5, help="failovers of each kind (clean, forced)")
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
        if args.failovers:
            timed("MariaDB failovers", lambda: failovers(bench, args.failovers))
    finally:
        if not args.keep:
            environment.release_and_delete(bench)
            if started_here:
                environment.stop_local_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
