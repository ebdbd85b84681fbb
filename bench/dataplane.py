"""Benchmark: the PostgreSQL data plane on real servers (the same harness as tests/dataplane).

    python bench/dataplane.py [--failovers 10] [--switchovers 5] [--scale 30]

Prints figures; asserts nothing about time. Needs the local cluster (Patroni's DCS) and
SeaweedFS, both from hack/; runs as root (PostgreSQL as the postgres user).
- failover: kill -9 of the primary's postmaster under continuous inserts → first
  acknowledged insert on the new primary, p50/p99/max over N runs, and lost commits;
- switchover: Patroni switchover under inserts → first acknowledged insert after;
- archive lag under pgbench: WAL segments written but not yet archived, sampled each second;
- backup and restore throughput of pgBackRest to S3 against a raw copy (cp -a) of the
  same data directory (without pg_wal, which backups do not copy), in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.figures import seconds_summary  # noqa: E402
from hack.localcluster.layout import default_layout  # noqa: E402
from tests.support.dataplane import BUCKET, LocalServer  # noqa: E402
from tests.support.kube import Cluster, installed_operators, local_kubectl, wait_for  # noqa: E402
from tests.support.s3 import SeaweedFS, weed_binary  # noqa: E402
from tests.support.writer import Writer  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def cluster() -> Cluster:
    if subprocess.run([sys.executable, str(ROOT / "hack/cluster.py"), "status"], capture_output=True).returncode:
        say("==> starting the local cluster")
        subprocess.run([sys.executable, str(ROOT / "hack/cluster.py"), "up"], check=True)
    found = Cluster(default_layout().kubeconfig, local_kubectl(), local=True)
    if running := installed_operators(found):  # it would reconcile the harness's DBInstance too
        raise SystemExit(f"a kuberds operator is installed in this cluster ({', '.join(running)}): "
                         "`make cluster-down` first")  # fmt: skip
    found.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    return found


def namespace(c: Cluster) -> str:
    name = f"bench-dataplane-{uuid.uuid4().hex[:5]}"
    core = kubernetes.client.CoreV1Api(c.client())
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30, what="default ServiceAccount")  # fmt: skip
    return name


RUNS = iter(range(1, 10**6))


def writer(server: LocalServer) -> Writer:
    return server.writer(first_id=next(RUNS) * 10**7).start()


def one_failover(server: LocalServer) -> tuple[float, int, int]:
    server.wait_streaming(timeout=300)
    w = writer(server)
    wait_for(lambda: len(w.acknowledged) > 100, timeout=60, what="writes")
    old = server.primary()
    at = time.monotonic()
    os.kill(old.postmaster_pid(), signal.SIGKILL)
    seconds = wait_for(lambda: w.recovered_after(at), timeout=120, interval=0.1, what="writes again")
    count = len(w.acknowledged)
    wait_for(lambda: len(w.acknowledged) > count + 50, timeout=30, what="more writes")
    w.stop()
    missing = w.missing()
    wait_for(lambda: old.role() == "replica", timeout=300, interval=1, what="old primary rejoins")
    return seconds, len(w.acknowledged), len(missing)


def failovers(server: LocalServer, runs: int) -> None:
    say(f"==> failover: kill -9 of the primary's postmaster, {runs} runs")
    times, lost = [], 0
    for run in range(1, runs + 1):
        seconds, acknowledged, missing = one_failover(server)
        times.append(seconds)
        lost += missing
        say(f"    run {run}: writes again after {seconds:.2f}s; {acknowledged} acknowledged, {missing} lost")
    say(f"    failover: {seconds_summary(times)}; acknowledged commits lost in all runs: {lost}")


def one_switchover(server: LocalServer) -> tuple[float, int]:
    server.wait_streaming(timeout=300)
    w = writer(server)
    wait_for(lambda: len(w.acknowledged) > 100, timeout=60, what="writes")
    old = server.primary()
    other = next(m for m in server.members if m is not old)
    at = time.monotonic()
    server.switchover(old, other)
    wait_for(lambda: other.role() == "master", timeout=120, interval=0.1, what="switchover")
    time.sleep(3)
    # No failed statement at all means no interruption a client could see.
    interrupted = any(t > at for t in w.error_times)
    seconds = wait_for(lambda: w.recovered_after(at) if interrupted else 0.001, timeout=60, interval=0.1,
                       what="writes after switchover")  # fmt: skip
    w.stop()
    return seconds, len(w.missing())


def switchovers(server: LocalServer, runs: int) -> None:
    say(f"==> switchover, {runs} runs")
    times, lost = [], 0
    for _ in range(runs):
        seconds, missing = one_switchover(server)
        times.append(seconds)
        lost += missing
    say(f"    switchover: {seconds_summary(times)}; acknowledged commits lost: {lost}")


def pgbench(server: LocalServer, *args: str) -> subprocess.CompletedProcess:
    member = server.primary()
    env = {**os.environ, "PGPASSWORD": server.superuser_password}
    # The superuser logs in on the member's socket only.
    socket_dir = str(member.workdir / "run")
    argv = ["pgbench", "-h", socket_dir, "-p", str(member.pg_port), "-U", "postgres", *args, "postgres"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True)


def archive_lag(server: LocalServer, seconds: int) -> None:
    say(f"==> archive lag under pgbench (8 clients, {seconds}s)")
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with server.superuser(server.primary()) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn()), last_archived_wal "
                                   "FROM pg_stat_archiver").fetchone()  # fmt: skip
                if row[1]:
                    samples.append(int(row[0][8:16], 16) * 256 + int(row[0][16:24], 16)
                                   - int(row[1][8:16], 16) * 256 - int(row[1][16:24], 16) - 1)  # fmt: skip
                time.sleep(1)

    pgbench(server, "-i", "-s", "10", "-q")
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result = pgbench(server, "-c", "8", "-j", "2", "-T", str(seconds), "-N")
    stop.set()
    thread.join()
    tps = next((line for line in result.stdout.splitlines() if line.startswith("tps")), "")
    say(f"    {tps.strip()}")
    say(f"    segments not yet archived: mean {statistics.mean(samples):.1f}, max {max(samples)} "
        f"(16 MiB each; n={len(samples)} samples)")  # fmt: skip


def du(path: Path) -> int:
    """Bytes of the data directory a backup copies (pg_wal is archived separately, not copied)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "pg_wal" not in f.parts)


def throughput(server: LocalServer, scale: int, workdir: Path) -> None:
    say(f"==> backup and restore throughput (pgbench scale {scale})")
    pgbench(server, "-i", "-s", str(scale), "-q")
    server.archive_now()
    member = server.primary()
    size = du(member.data_dir)
    mib = size / 2**20
    copy_to = workdir / "raw-copy"
    started = time.monotonic()
    copy_to.mkdir()
    subprocess.run(f"tar -C {member.data_dir} --exclude=./pg_wal -cf - . | tar -C {copy_to} -xf -", shell=True,
                   check=True)  # fmt: skip
    raw = time.monotonic() - started
    shutil.rmtree(copy_to)
    conf = member.workdir / "run" / "pgbackrest.conf"
    base = ["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={conf}", f"--stanza={server.name}"]
    started = time.monotonic()
    subprocess.run([*base, "--repo=1", "--type=full", "backup"], check=True, capture_output=True)
    backup = time.monotonic() - started
    target = workdir / "restored"
    target.mkdir()
    shutil.chown(target, "postgres", "postgres")
    target.chmod(0o700)
    started = time.monotonic()
    subprocess.run([*base, "--repo=1", f"--pg1-path={target}", "--type=none", "restore"], check=True,
                   capture_output=True)  # fmt: skip
    restore = time.monotonic() - started
    say(f"    data directory {mib:.0f} MiB")
    say(f"    raw copy (tar | tar, local disk)  {raw:6.1f}s  {mib / raw:7.1f} MiB/s  (baseline)")
    say(f"    pgBackRest full backup to S3      {backup:6.1f}s  {mib / backup:7.1f} MiB/s  "
        f"({raw / backup:.2f}x the raw copy's speed; zstd + AES-256, 2 processes)")  # fmt: skip
    say(f"    pgBackRest restore from S3        {restore:6.1f}s  {mib / restore:7.1f} MiB/s  "
        f"({raw / restore:.2f}x)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--switchovers", type=int, default=5)
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale for the throughput run (~15 MiB each)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("run as root: PostgreSQL runs as the postgres user")
        return 2
    with harness() as (c, ns, workdir, s3), LocalServer(c, ns, "bench", workdir / "b", s3) as server:
        server.primary(timeout=240)
        if args.failovers:
            failovers(server, args.failovers)
        if args.switchovers:
            switchovers(server, args.switchovers)
        archive_lag(server, args.pgbench_seconds)
        throughput(server, args.scale, workdir)
    return 0


@contextlib.contextmanager
def harness() -> Iterator[tuple[Cluster, str, Path, SeaweedFS]]:
    """The local cluster, a namespace of its own, a work directory and an S3 server; all
    but the cluster go afterwards."""
    c = cluster()
    ns = namespace(c)
    workdir = Path(tempfile.mkdtemp(prefix="kb-"))
    workdir.chmod(0o755)
    s3 = SeaweedFS(weed_binary(), workdir / "seaweedfs")
    s3.start()
    s3.create_bucket(BUCKET)
    try:
        yield c, ns, workdir, s3
    finally:
        s3.stop()
        kubernetes.client.CoreV1Api(c.client()).delete_namespace(ns)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
