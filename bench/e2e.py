"""Benchmark: kuberds through Kubernetes, on the real-node cluster (the e2e suite's setup).

    python bench/e2e.py [--runs 5] [--failovers 5] [--kubeconfig FILE] [--keep]
    make bench-e2e

Prints figures; asserts nothing about time (it stops only when something is wrong: a server
never Available, an acknowledged row lost).
- the setup as this run saw it: cluster up (or reused), images built and loaded, Helm
  install, the S3 server;
- apply → Available for a Single-AZ and a Multi-AZ DBInstance and a DBCluster of 1 + 2 (with
  backups to the in-cluster S3 server), each created, measured and deleted `--runs` times,
  one at a time;
- failover through Kubernetes: the writer's pod deleted under continuous inserts from a
  client pod through the writer Service → the first acknowledged insert after the delete,
  and the longest time without one (what the application sees), over `--failovers` runs on
  one Multi-AZ DBInstance, then one DBCluster of 1 + 2; every acknowledged row checked;
- the same once with the object store down for a while first (`--store-outage`, on by
  default): WAL archiving failing when the primary goes must not hold the failover back;
- node loss (`--node-freezes`): the real node under the writer frozen whole (its kubelet,
  containerd and every process of its pods, `hack/cluster.py freeze`) under writes, for a
  Multi-AZ DBInstance and a DBCluster of 1 + 2 → the first acknowledged write through the
  writer endpoint, the longest gap; then thawed, and every acknowledged row checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.figures import seconds_summary  # noqa: E402
from e2e import environment  # noqa: E402
from e2e.manifests import CLIENT, client_pod, dbcluster, dbinstance, object_store  # noqa: E402
from e2e.support import E2E, OPERATOR_NAMESPACE  # noqa: E402
from tests.support.kube import Cluster, wait_for  # noqa: E402

NAMESPACE = "kuberds-bench"


def say(text: str) -> None:
    print(text, flush=True)


def timed(what: str, action: Callable[[], object]) -> object:
    say(f"==> {what}")
    started = time.monotonic()
    result = action()
    say(f"    {what}: {time.monotonic() - started:.1f}s")
    return result


def spec(multi_az: bool) -> dict:
    return {"multiAZ": multi_az, "deletionProtection": False, "skipFinalSnapshot": True,
            "backup": {"objectStore": object_store(environment.S3_NAMESPACE), "retentionDays": 1}}  # fmt: skip


def cluster(bench: E2E, name: str) -> dict:
    """A DBCluster of a writer and two readers (a DBInstance's spec without multiAZ)."""
    fields = {k: v for k, v in spec(False).items() if k != "multiAZ"}
    return dbcluster(bench.namespace, name, readers=2, **fields)


def create_and_delete(bench: E2E, manifest: dict) -> tuple[float, float]:
    """apply → Available, then delete → gone (its claims removed too: volumes are retained
    by design, and the next run should not inherit them)."""
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    started = time.monotonic()
    bench.apply(manifest)
    bench.wait_available(name, timeout=900, kind=kind)
    available = time.monotonic() - started
    started = time.monotonic()
    delete_server(bench, kind, name)
    return available, time.monotonic() - started


def delete_server(bench: E2E, kind: str, name: str) -> None:
    """Deletes the server, then its claims (volumes are retained by design, and the next run
    of the same name would be refused them) and, once its pods are gone, Patroni's own
    ConfigMaps (no owner: left, they hold a same-named server waiting to bootstrap)."""
    bench.kubectl("delete", kind, name, "-n", bench.namespace, "--wait=false")
    wait_for(lambda: bench.get(kind, name) is None, timeout=600, interval=1, what=f"{name} deleted")
    bench.kubectl("delete", "pvc", "-n", bench.namespace, "-l", f"app.kubernetes.io/instance={name}",
                  "--wait=true", "--timeout=120s", timeout=140)  # fmt: skip
    wait_for(lambda: not bench.pods(name), timeout=300, interval=1, what=f"{name}'s pods gone")
    bench.kubectl("delete", "configmap", "-n", bench.namespace, "-l",
                  f"app.kubernetes.io/instance={name},app.kubernetes.io/component=database", timeout=60)  # fmt: skip


def creates(bench: E2E, runs: int) -> None:
    shapes = (("Single-AZ", lambda n: dbinstance(bench.namespace, n, **spec(False))),
              ("Multi-AZ", lambda n: dbinstance(bench.namespace, n, **spec(True))),
              ("DBCluster 1+2", lambda n: cluster(bench, n)))  # fmt: skip
    for label, manifest in shapes:
        say(f"==> {label}: apply → Available, {runs} runs")
        available, deleted = [], []
        for run in range(1, runs + 1):
            up, gone = create_and_delete(bench, manifest(f"bench-{label.split()[0].lower()}-{run}"))
            available.append(up)
            deleted.append(gone)
            say(f"    run {run}: Available after {up:.1f}s, deleted in {gone:.1f}s")
        say(f"    {label} apply → Available: {seconds_summary(available)}")
        say(f"    {label} delete → gone: {seconds_summary(deleted)}")


def one_failover(bench: E2E, name: str, run: int | str, kind: str = "dbinstance") -> tuple[float, float, int]:
    """Deletes the writer's pod under writes; (delete → first acknowledged write, longest gap,
    acknowledged rows)."""
    old = writer_of(bench, name, kind)
    table = f"failover_{run}"
    writer = bench.writer(name, seconds=300, table=table, kind=kind)
    time.sleep(8)  # steady inserts first
    deleted_at = time.time()
    bench.kubectl("delete", "pod", old, "-n", bench.namespace, "--wait=false")
    wait_for(lambda: writer_of(bench, name, kind) not in (None, old), timeout=180, interval=0.5,
             what="a new writer")  # fmt: skip
    # Labelled primary is not yet writable (a promotion can wait on the archive): wait for that.
    wait_for(lambda: _writable(bench, name, kind), timeout=600, interval=1, what="the new writer taking writes")
    time.sleep(3)  # writes on the new writer for a while
    writer.stop()
    result = writer.result()
    if not result["acked"]:
        raise SystemExit(f"run {run}: no insert was acknowledged: {result.get('errors', [])[-5:]}")
    present = {int(row[0]) for row in bench.sql(name, f"SELECT id FROM {table}", kind=kind)}
    lost = sorted(set(result["acked"]) - present)
    if lost:
        raise SystemExit(f"run {run}: acknowledged rows lost: {lost[:20]}")
    gap, gap_started = result["longest_gap_seconds"], result["longest_gap_started_epoch"]
    if not deleted_at - 1 <= gap_started <= deleted_at + 30:
        raise SystemExit(f"run {run}: the longest gap did not follow the delete: {result}")
    # Same clock here (one machine); on another cluster, the pod's and this host's NTP clocks.
    first_write = gap_started + gap - deleted_at
    # The deleted pod comes back as a replica before the next run.
    wait_for(lambda: bench.status(name, kind).get("phase") == "Available", timeout=600, interval=2,
             what="the old writer back as a ready replica")  # fmt: skip
    return first_write, gap, len(result["acked"])


def _writable(bench: E2E, name: str, kind: str = "dbinstance") -> bool:
    try:
        return bench.sql(name, "SELECT pg_is_in_recovery()", kind=kind) == [["f"]]
    except AssertionError:  # psql failed: not reachable or refused yet
        return False


def failovers(bench: E2E, runs: int) -> None:
    for kind, manifest in (("dbinstance", dbinstance(bench.namespace, "bench-failover", **spec(True))),
                           ("dbcluster", cluster(bench, "bench-failover-c"))):  # fmt: skip
        name = manifest["metadata"]["name"]
        say(f"==> failover through Kubernetes: the writer's pod deleted under writes, {kind}, {runs} runs")
        bench.apply(manifest)
        bench.wait_available(name, timeout=900, kind=kind)
        first_writes, gaps = [], []
        for run in range(1, runs + 1):
            first_write, gap, acked = one_failover(bench, name, run, kind)
            first_writes.append(first_write)
            gaps.append(gap)
            say(f"    run {run}: first write {first_write:.2f}s after the delete, longest gap {gap:.2f}s, "
                f"{acked} acknowledged, 0 lost")  # fmt: skip
        say(f"    {kind}: pod delete → first acknowledged write: {seconds_summary(first_writes)}")
        say(f"    {kind}: longest write gap: {seconds_summary(gaps)}")
        if kind == "dbcluster":  # the store-outage run uses the DBInstance
            delete_server(bench, kind, name)


def failover_with_the_store_down(bench: E2E) -> None:
    """Issue 4 saw a killed primary not fail over within 60 s while the store was down (the
    dying postmaster's archiver kept retrying); here the pod is deleted, as Kubernetes would.
    The store goes "down" by its Service losing its endpoints (connections refused, as for a
    store that stopped); scaling it to zero would also lose its emptyDir, and the backups."""
    name, service = "bench-failover", ["service/s3", "-n", environment.S3_NAMESPACE, "--type=merge", "-p"]
    say("==> failover with the object store down")
    bench.kubectl("patch", *service, json.dumps({"spec": {"selector": {"app.kubernetes.io/name": "s3-down"}}}))
    try:
        # Past an archive_timeout (60 s): a segment is waiting and archive-push failing.
        wait_for(lambda: ((bench.condition(name, "BackupHealthy") or {}).get("status") == "False"), timeout=300,
                 interval=5, what="BackupHealthy False")  # fmt: skip
        say(f"    BackupHealthy: {bench.condition(name, 'BackupHealthy').get('reason')}")
        first_write, gap, acked = one_failover(bench, name, "outage")
        say(f"    store down: first write {first_write:.2f}s after the delete, longest gap {gap:.2f}s, "
            f"{acked} acknowledged, 0 lost")  # fmt: skip
    finally:
        bench.kubectl("patch", *service, json.dumps({"spec": {"selector": {"app.kubernetes.io/name": "s3"}}}))
    started = time.monotonic()
    wait_for(lambda: (bench.condition(name, "BackupHealthy") or {}).get("status") == "True", timeout=600,
             interval=5, what="archiving caught up")  # fmt: skip
    say(f"    store back: BackupHealthy True again after {time.monotonic() - started:.0f}s")


def node_of(bench: E2E, pod: str) -> str | None:
    return ((bench.get("pod", pod) or {}).get("spec") or {}).get("nodeName")


def writer_of(bench: E2E, name: str, kind: str) -> str | None:
    status = bench.status(name, kind)
    return status.get("writer") if kind == "dbcluster" else status.get("currentPrimary")


def node_command(command: str, node: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "hack" / "cluster.py"), command, node], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


class Timeline:
    """Samples, about every 0.3 s, who holds the leader lease and where the writer Service's
    EndpointSlice points, and keeps when each changed: which step of a failover took the time."""

    def __init__(self, bench: E2E, name: str) -> None:
        self.bench, self.name, self.changes = bench, name, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _read(self) -> tuple[str, str]:
        lease = self.bench.kubectl("get", "configmap", f"{self.name}-leader", "-n", self.bench.namespace, "-o",
                                   "jsonpath={.metadata.annotations.leader}", check=False).stdout  # fmt: skip
        slices = self.bench.kubectl("get", "endpointslices", "-n", self.bench.namespace, "-l",
                                    f"kubernetes.io/service-name={self.name}", "-o",
                                    "jsonpath={.items[*].endpoints[*].targetRef.name}", check=False).stdout  # fmt: skip
        return lease.strip() or "-", slices.strip() or "-"

    def _sample(self) -> None:
        last = (None, None)
        while not self._stop.is_set():
            now, seen = time.time(), self._read()
            for what, old, new in (("lease", last[0], seen[0]), ("endpoint", last[1], seen[1])):
                if old is not None and new != old:
                    self.changes.append((now, what, new))
            last = seen
            self._stop.wait(0.3)

    def stop(self, since: float) -> str:
        self._stop.set()
        self._thread.join(10)
        return ", ".join(f"{what} → {new} +{at - since:.1f}s" for at, what, new in self.changes) or "no change seen"


FREEZE_CLIENT_DEADLINE = 1.0


def failover_ready(bench: E2E, name: str, kind: str) -> bool:
    """Available, with a ready standby that reports itself synchronous."""
    status = bench.status(name, kind)
    standbys = [m for m in status.get("members", []) if m.get("role") != "primary"]
    return status.get("phase") == "Available" and any(m.get("ready") and m.get("synchronous") for m in standbys)


def node_of_first(bench: E2E, selector: str, namespace: str) -> str | None:
    pods = bench.items("pod", selector, namespace=namespace)
    return (pods[0].get("spec") or {}).get("nodeName") if pods else None


def spared_node(bench: E2E) -> str:
    """The node a freeze must spare: the operator's (endpoints move only while it runs: a
    frozen operator is another scenario, in the README's limits). The client pod is made again
    there (with the current writer: a kept namespace's pod may mount an older one); the object
    store's node is reported (a frozen store delays what reads the archive)."""
    operator = node_of_first(bench, "app.kubernetes.io/component=operator", OPERATOR_NAMESPACE)
    if operator is None:
        raise SystemExit("no operator pod found")
    bench.kubectl("delete", "pod", CLIENT, "-n", bench.namespace, "--wait=true")
    writer_source = (ROOT / "e2e" / "writer.py").read_text()
    bench.apply(*client_pod(bench.namespace, environment.IMAGES["postgres"], writer_source, node=operator))
    bench.kubectl("wait", "pod", CLIENT, "-n", bench.namespace, "--for=condition=Ready", "--timeout=180s",
                  timeout=200)  # fmt: skip
    store = node_of_first(bench, "app.kubernetes.io/name=s3", environment.S3_NAMESPACE)
    say(f"    the operator and the client on {operator}; the object store on {store}")
    return operator


def one_freeze(bench: E2E, name: str, kind: str, run: int, spared: str) -> tuple[float, float, int, str]:
    """Freezes the writer's node under writes from the client pod (on the spared node: the
    writer is moved off it first by deleting its pod when needed)."""
    for _ in range(4):
        # Only a synchronous standby may be promoted: a member back from the last run has to
        # catch up first, or deleting the writer just restarts it.
        wait_for(lambda: failover_ready(bench, name, kind), timeout=600, interval=1, what="a synchronous standby")
        writer = writer_of(bench, name, kind)
        if writer and node_of(bench, writer) != spared:
            break
        bench.kubectl("delete", "pod", writer, "-n", bench.namespace)
        wait_for(lambda old=writer: writer_of(bench, name, kind) not in (None, old), timeout=180, interval=0.5,
                 what="a writer away from the client's node")  # fmt: skip
    node, table = node_of(bench, writer), f"freeze_{kind}_{run}"
    # A 1 s deadline per statement: the client retries often enough to see the moment writes resume.
    load = bench.writer(name, seconds=600, table=table, kind=kind, deadline=FREEZE_CLIENT_DEADLINE)
    time.sleep(8)
    frozen_at = time.time()
    frozen_with = [p for p in bench.pods(name) if p != writer and node_of(bench, p) == node]
    timeline = Timeline(bench, name)
    node_command("freeze", node)
    moved = True
    try:
        wait_for(lambda: writer_of(bench, name, kind) not in (None, writer), timeout=120, interval=0.5,
                 what="a writer on the other node")  # fmt: skip
        # Status names the new writer before clients may write to it (one run stopped the load
        # 5 s after that with no insert acknowledged since the freeze, and the gap measured
        # nothing): wait for a write through the endpoint first.
        wait_for(lambda: _writable(bench, name, kind), timeout=120, interval=1, what="the new writer taking writes")
        time.sleep(5)  # writes on the new writer for a while
    except AssertionError:  # with the synchronous standby frozen too, no member may be promoted
        moved = False
        say(f"    no failover within 120 s: {', '.join(frozen_with) or 'no other member'} frozen with the writer")
    finally:
        node_command("thaw", node)
        say(f"    run {run}: {timeline.stop(frozen_at)}")
    load.stop()
    result = load.result()
    say(f"    run {run}: the writer's errors ({result['error_count']}): {'; '.join(result['errors'][:4])}")
    wait_for(lambda: bench.status(name, kind).get("phase") == "Available", timeout=900, interval=2,
             what=f"{name}: the thawed members back")  # fmt: skip
    present = {int(row[0]) for row in bench.sql(name, f"SELECT id FROM {table}", kind=kind)}
    lost = sorted(set(result["acked"]) - present)
    if lost:
        raise SystemExit(f"{name} freeze {run}: acknowledged rows lost: {lost[:20]}")
    gap, gap_started = result["longest_gap_seconds"], result["longest_gap_started_epoch"]
    first_write = gap_started + gap - frozen_at if moved else None
    return first_write, gap, len(result["acked"]), node + (f" (with {', '.join(frozen_with)})" if frozen_with else "")


def cluster_with_one_member_off(bench: E2E, manifest: dict, spared: str) -> None:
    """Three members on the two real nodes are two and one: the pair is placed on the spared
    node (the third member made while the other node is cordoned; local volumes keep each
    member on its node after), so the frozen node holds the writer alone and two members stay
    to promote and confirm. Were the pair frozen, strict synchronous commit would (rightly)
    hold every write until the thaw: one node per zone in three zones is the real answer."""
    name = manifest["metadata"]["name"]
    bench.apply({**manifest, "spec": {**manifest["spec"], "readers": 1}})
    bench.wait_available(name, timeout=900, kind="dbcluster")
    others = sorted({node_of(bench, pod) for pod in bench.pods(name)} - {spared, None})
    for node in others:
        bench.kubectl("cordon", node)
    try:
        bench.patch("dbcluster", name, {"spec": {"readers": manifest["spec"]["readers"]}})
        wait_for(lambda: bench.status(name, "dbcluster").get("readyReaders") == manifest["spec"]["readers"],
                 timeout=600, interval=2, what=f"{name}: the new reader on {spared}")  # fmt: skip
    finally:
        for node in others:
            bench.kubectl("uncordon", node)
    say(f"    members: {', '.join(f'{pod} on {node_of(bench, pod)}' for pod in sorted(bench.pods(name)))}")


def node_freezes(bench: E2E, runs: int, kinds: list[str]) -> None:
    spared = spared_node(bench)
    for kind, name, manifest in (
        ("dbinstance", "bench-freeze", dbinstance(bench.namespace, "bench-freeze", **spec(True))),
        ("dbcluster", "bench-freeze-c", cluster(bench, "bench-freeze-c")),
    ):
        if kind not in kinds:
            continue
        say(f"==> node loss: the writer's real node frozen under writes, {kind}, {runs} runs")
        if kind == "dbcluster":
            cluster_with_one_member_off(bench, manifest, spared)
        else:
            bench.apply(manifest)
            bench.wait_available(name, timeout=900, kind=kind)
        first_writes, gaps = [], []
        for run in range(1, runs + 1):
            first_write, gap, acked, node = one_freeze(bench, name, kind, run, spared)
            gaps.append(gap)
            if first_write is not None:
                first_writes.append(first_write)
            after = f"first write {first_write:.2f}s after" if first_write is not None else "no failover until thawed"
            say(f"    run {run}: {node} frozen; {after}, longest gap {gap:.2f}s, {acked} acknowledged, 0 lost "
                "after the thaw")  # fmt: skip
        say(f"    {kind}: node frozen → first acknowledged write: {seconds_summary(first_writes)} "
            f"({runs - len(first_writes)} of {runs} runs without a failover)")  # fmt: skip
        delete_server(bench, kind, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="creates per kind (Single-AZ, Multi-AZ)")
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--store-outage", action=argparse.BooleanOptionalAction, default=True,
                        help="one more failover with the S3 server down")  # fmt: skip
    parser.add_argument("--node-freezes", type=int, default=3,
                        help="frozen writer nodes per kind (Multi-AZ DBInstance, DBCluster); 0: none")  # fmt: skip
    parser.add_argument("--freeze-kinds", default="dbinstance,dbcluster", help="kinds the node freezes run for")
    parser.add_argument("--kubeconfig", help="another cluster whose nodes have the images (default: the local one)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster, kuberds and the namespace")
    args = parser.parse_args()

    started_here = False
    if args.kubeconfig:
        cluster: Cluster = environment.given_cluster(args.kubeconfig)
    else:
        cluster, started_here = timed("local cluster (real nodes) and images", environment.local_cluster)
    timed("helm install of kuberds", lambda: environment.install_kuberds(cluster))
    with tempfile.TemporaryDirectory() as workdir:
        s3_ca = timed("S3 server in the cluster", lambda: environment.start_s3(cluster, Path(workdir)))
    # A kept namespace's client pod may be pinned to a node (a freeze run): made again.
    cluster.kubectl("delete", "pod", CLIENT, "-n", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)
    bench = timed("namespace and client pod", lambda: environment.prepare_namespace(cluster, NAMESPACE, s3_ca))
    try:
        if args.runs:
            creates(bench, args.runs)
        if args.failovers:
            failovers(bench, args.failovers)
        if args.failovers and args.store_outage:
            failover_with_the_store_down(bench)
        if args.node_freezes and not args.kubeconfig:  # freezing needs the local real nodes
            node_freezes(bench, args.node_freezes, args.freeze_kinds.split(","))
    finally:
        if not args.keep:
            environment.release_and_delete(bench)
            if started_here:
                environment.stop_local_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
