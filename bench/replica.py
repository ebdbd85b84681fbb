"""Benchmark: read replicas on real servers (the harness of tests/dataplane).

    python bench/replica.py [--scale 70] [--pgbench-seconds 30]

Prints figures; asserts nothing about time. Needs the local cluster (Patroni's DCS) and
SeaweedFS, both from hack/; runs as root (PostgreSQL as the postgres user).
- create → replicating with a source of `--scale` pgbench scale (70 ≈ 1 GiB): seeded from the
  source's newest backup in the object store, against a base backup streamed from the source
  (the fallback), in the same run: the ratio is the figure;
- the replica's reported lag, sampled each second, while pgbench writes on the source;
- promote → first write accepted by the former replica.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.dataplane import harness, pgbench, say  # noqa: E402
from bench.figures import percentile  # noqa: E402
from tests.support.dataplane import LocalServer  # noqa: E402
from tests.support.kube import wait_for  # noqa: E402
from tests.support.s3 import SeaweedFS  # noqa: E402

from kuberds.agent.postgres.agent import AGENT_PGPASS  # noqa: E402
from kuberds.contract.settings import RestorePlan, StandbySource  # noqa: E402
from kuberds.engines.postgres import POSTGRES  # noqa: E402
from kuberds.operations import agents  # noqa: E402


def full_backup(server: LocalServer) -> None:
    """A full backup now, as the agent takes its automated ones (its configuration and login)."""
    run = server.primary().workdir / "run"
    argv = ["pgbackrest", f"--config={run / 'pgbackrest.conf'}", f"--stanza={server.name}", "--repo=1",
            "--type=full", "backup"]  # fmt: skip
    done = subprocess.run(["runuser", "-u", "postgres", "--", "env", f"PGPASSFILE={run / AGENT_PGPASS}", *argv],
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"pgbackrest backup failed ({done.returncode}): {done.stdout}{done.stderr}")


def database_size(server: LocalServer) -> int:
    with server.superuser(server.primary()) as conn:
        return int(conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0])


def start_replica(servers: list[LocalServer], c, ns: str, workdir: Path, s3: SeaweedFS, source: LocalServer,
                  name: str, seed: bool) -> tuple[LocalServer, float]:  # fmt: skip
    standby = StandbySource(host="localhost", port=source.primary().pg_port, ssl_mode="verify-full",
                            ca_bundle=(source.tls_dir / "ca.crt").read_text(), seed_from_backup=seed)  # fmt: skip
    replica = LocalServer(c, ns, name, workdir / name, s3, multi_az=False, standby=standby,
                          restore=RestorePlan(repository=source.backup.repository),
                          restore_cipher=source.cipher_pass, credentials_of=source)  # fmt: skip
    started = time.monotonic()
    servers.append(replica.__enter__())
    leader = replica.leader(timeout=1800)
    wait_for(lambda: replica.agent_status(leader).get("streaming") is True, timeout=1800, interval=0.5,
             what=f"{name} streaming\n{replica.logs()}")  # fmt: skip
    return replica, time.monotonic() - started


def lag_under_load(source: LocalServer, replica: LocalServer, seconds: int) -> list[float]:
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        leader = replica.leader()
        while not done.wait(1.0):
            lag = replica.agent_status(leader).get("replicaLagSeconds")
            if lag is not None:
                samples.append(lag)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = pgbench(source, "-N", "-c", "8", "-j", "2", "-T", str(seconds))
    done.set()
    sampler.join()
    tps = next((line for line in result.stdout.splitlines() if line.startswith("tps")), "tps ?")
    say(f"    pgbench on the source: {tps.strip()}")
    return samples


def promote(replica: LocalServer) -> float:
    leader = replica.leader()
    tls = agents.AgentTls(leader.api_ca.read_text(), "localhost") if leader.api_ca else None
    started = time.monotonic()
    agents.send("127.0.0.1", leader.api_port, POSTGRES.promote_replica(), replica.api_password, tls=tls)

    def writable() -> bool:
        try:
            with replica.connect(leader, autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS promoted (at timestamptz DEFAULT now())")
                conn.execute("INSERT INTO promoted DEFAULT VALUES")
            return True
        except psycopg.Error:  # read-only until promoted: any refusal means "not yet"
            return False

    wait_for(writable, timeout=120, interval=0.1, what="a write accepted by the promoted replica")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale of the source (70 ≈ 1 GiB)")
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("run as root: PostgreSQL runs as the postgres user")
        return 2
    servers: list[LocalServer] = []
    with harness() as (c, ns, workdir, s3):
        try:
            run(args, servers, c, ns, workdir, s3)
        finally:
            for server in reversed(servers):
                server.__exit__(None, None, None)
    return 0


def run(args: argparse.Namespace, servers: list[LocalServer], c, ns: str, workdir: Path, s3: SeaweedFS) -> None:
    source = LocalServer(c, ns, "rsrc", workdir / "src", s3, multi_az=False)
    servers.append(source.__enter__())
    primary = source.primary(timeout=240)
    # The first automated backup (taken at once) holds the repository's lock: let it finish.
    wait_for(lambda: source.agent_status(primary).get("lastBackupTime"), timeout=300, interval=1,
             what="the source's first automated backup")  # fmt: skip
    say(f"==> loading the source: pgbench -i -s {args.scale}")
    started = time.monotonic()
    pgbench(source, "-i", "-q", "-s", str(args.scale))
    size = database_size(source)
    say(f"    {size / 2**30:.2f} GiB in {time.monotonic() - started:.0f}s; a full backup of it")
    started = time.monotonic()
    full_backup(source)
    say(f"    backed up in {time.monotonic() - started:.0f}s")

    say("==> create → replicating")
    seeded, from_backup = start_replica(servers, c, ns, workdir, s3, source, "rseed", seed=True)
    say(f"    seeded from the backup in the object store: {from_backup:.1f}s")
    copied, from_source = start_replica(servers, c, ns, workdir, s3, source, "rcopy", seed=False)
    say(f"    base backup streamed from the source:       {from_source:.1f}s")
    say(f"    seed from backup / base backup: {from_backup / from_source:.2f}x the time "
        f"({size / 2**20 / from_backup:.0f} MiB/s against {size / 2**20 / from_source:.0f} MiB/s)")  # fmt: skip
    copied.__exit__(None, None, None)
    servers.remove(copied)

    say(f"==> the replica's reported lag while pgbench writes on the source ({args.pgbench_seconds}s)")
    lag = lag_under_load(source, seeded, args.pgbench_seconds)
    if lag:
        say(f"    lag p50 {percentile(lag, 50):.1f}s  p99 {percentile(lag, 99):.1f}s  max {max(lag):.1f}s  "
            f"(n={len(lag)})")  # fmt: skip
    settle = wait_for(lambda: (v := seeded.agent_status(seeded.leader()).get("replicaLagSeconds")) == 0 and (v,),
                      timeout=300, interval=0.5, what="the replica caught up")  # fmt: skip
    say(f"    caught up after the load: lag {settle[0]}")

    say("==> promote → writable")
    say(f"    first write accepted {promote(seeded):.2f}s after the promote request")


if __name__ == "__main__":
    sys.exit(main())
