"""Benchmark: the pooling proxy (real PgBouncer) against direct connections, in one run on the
same machine and the same server (the harness of tests/dataplane).

    python bench/proxy.py [--seconds 20] [--clients 40,400,1000] [--switchovers 3]

Prints figures; asserts nothing about time.
- pgbench -S (read-only) throughput and p99 latency, direct and through the proxy, at each
  client count (the ratio is the proxy's over direct), and at 400 clients with a new
  connection per transaction (-C), as short-lived clients connect;
- switchover held by the proxy (PAUSE, switchover, RECONNECT, RESUME) under 100 inserting
  clients: the longest time without an acknowledged insert, and the errors clients saw.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.dataplane import cluster, namespace, say  # noqa: E402
from bench.figures import percentile, seconds_summary  # noqa: E402
from tests.support.clients import Clients  # noqa: E402
from tests.support.dataplane import LocalServer  # noqa: E402
from tests.support.kube import wait_for  # noqa: E402
from tests.support.proxy import LocalProxy  # noqa: E402

from kuberds.operations.proxy import held_switchover  # noqa: E402

SCALE = 10  # pgbench accounts: 1M rows, about 150 MiB: in memory, so the figures are the connection path's


def pgbench(server: LocalServer, port: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": server.master_password, "PGSSLMODE": "disable"}
    argv = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "app", *args, "app"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=cwd)


def read_only(server: LocalServer, port: int, clients: int, seconds: int, connect_each: bool) -> tuple[float, float]:
    """tps, and p99 latency in ms from a 10 % sample of transactions."""
    logs = Path(tempfile.mkdtemp(prefix="pgbench-"))
    try:
        args = ["-S", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-l", "--sampling-rate=0.1"]
        result = pgbench(server, port, *args, *(["-C"] if connect_each else []), cwd=logs)
        tps = float(next(line for line in result.stdout.splitlines() if line.startswith("tps = ")).split()[2])
        latencies = [int(line.split()[2]) / 1000 for f in logs.iterdir() for line in f.read_text().splitlines()]
        return tps, percentile(latencies, 99) if latencies else float("nan")
    finally:
        shutil.rmtree(logs, ignore_errors=True)


def throughput(server: LocalServer, proxy: LocalProxy, counts: list[int], seconds: int) -> None:
    say(f"==> pgbench -S, {seconds}s per run, scale {SCALE}: direct vs through the proxy (pool of 20 per pod)")
    say(f"    {'clients':>8}  {'direct tps':>10} {'p99 ms':>8}  {'proxy tps':>10} {'p99 ms':>8}  {'ratio':>6}")
    runs = [(n, False) for n in counts] + [(400, True)]
    for clients, connect_each in runs:
        direct = read_only(server, server.primary().pg_port, clients, seconds, connect_each)
        pooled = read_only(server, proxy.port, clients, seconds, connect_each)
        label = f"{clients}{' -C' if connect_each else ''}"
        say(f"    {label:>8}  {direct[0]:10.0f} {direct[1]:8.1f}  {pooled[0]:10.0f} {pooled[1]:8.1f}  "
            f"{pooled[0] / direct[0]:5.2f}x")  # fmt: skip


def switchovers(server: LocalServer, proxy: LocalProxy, runs: int) -> None:
    say(f"==> switchover held by the proxy under 100 inserting clients, {runs} runs")
    with server.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    stalls, errors = [], 0
    for run in range(1, runs + 1):
        server.wait_streaming(timeout=300)
        clients = Clients(lambda: proxy.connect(autocommit=True), 100, first_id=run * 10**9).start()
        wait_for(lambda c=clients: len(c.acknowledged) > 1000, timeout=60, what="writes")
        old = server.primary()
        new = next(m for m in server.members if m is not old)
        began = time.monotonic()
        held = held_switchover([proxy.console()], lambda o=old, n=new: server.switchover(o, n),
                               lambda n=new: (proxy.point_at(n), True)[1])  # fmt: skip
        after = len(clients.acknowledged)
        wait_for(lambda c=clients, a=after: len(c.acknowledged) > a + 1000, timeout=60, what="writes after")
        clients.stop()
        stall = clients.longest_stall(began)
        stalls.append(stall)
        errors += len(clients.errors)
        say(f"    run {run}: {held.summary()}; longest stall {stall:.2f}s; {len(clients.errors)} client errors")
    say(f"    stall: {seconds_summary(stalls)}; client errors in all runs: {errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", default="40,400,1000")
    parser.add_argument("--switchovers", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("run as root: PostgreSQL runs as the postgres user")
        return 2
    counts = [int(n) for n in args.clients.split(",")]
    c = cluster()
    ns = namespace(c)
    workdir = Path(tempfile.mkdtemp(prefix="kb-"))
    workdir.chmod(0o755)
    # Direct runs need a backend per client: the server takes them all.
    spec = {"proxy": {"enabled": True}, "parameters": {"max_connections": str(max(counts) + 100)}}
    try:
        with LocalServer(c, ns, "bench", workdir / "b", None, spec=spec) as server:
            primary = server.primary(timeout=240)
            server.wait_streaming(timeout=300)
            wait_for(lambda: server.agent_status(primary).get("accountsReady") is True, timeout=120, what="accounts")
            with LocalProxy(server, workdir / "p", max_client_connections=max(counts) + 100) as proxy:
                say(f"==> pgbench -i -s {SCALE}")
                pgbench(server, primary.pg_port, "-i", "-s", str(SCALE), "-q")
                throughput(server, proxy, counts, args.seconds)
                if args.switchovers:
                    switchovers(server, proxy, args.switchovers)
    finally:
        kubernetes.client.CoreV1Api(c.client()).delete_namespace(ns)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
