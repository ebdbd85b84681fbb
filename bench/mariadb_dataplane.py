"""Benchmark: how far MariaDB's shipped binlogs trail the writes (the archive lag), on real
servers (the harness of tests/dataplane: mariadbd and its agent, a real Lease, SeaweedFS).

    python bench/mariadb_dataplane.py [--seconds 180] [--clients 8] [--members 2]
    make bench-mariadb-dataplane

Prints figures; asserts nothing about time. A sysbench-like write load (each transaction: an
INSERT of a 200-byte row, an UPDATE of a random earlier row, a commit) from `--clients`
threads; every 2 s the object store is listed and the newest shipped binlog event's time is
compared with now: that is how far back a point-in-time restore would have to stop (the agent
closes the active binlog every minute while writes come, and looks for closed ones every
10 s). PostgreSQL's figure (`make bench-dataplane`) counts WAL segments behind instead.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.dataplane import harness, say  # noqa: E402
from tests.support.dataplane import BUCKET  # noqa: E402
from tests.support.mariadb import LocalMariaDB  # noqa: E402
from tests.support.redis import StoreAccess  # noqa: E402
from tests.support.s3 import ACCESS_KEY, SECRET_KEY  # noqa: E402

from kuberds.agent.mariadb.binlogs import list_binlogs  # noqa: E402
from kuberds.agent.objectstore import ObjectStore  # noqa: E402
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository  # noqa: E402

ROW = "x" * 200
SAMPLE_SECONDS = 2.0


class Load:
    """Writers on the primary; counts committed transactions."""

    def __init__(self, server: LocalMariaDB, clients: int):
        self.server, self.clients = server, clients
        self.committed = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, index: int) -> None:
        primary = self.server.primary()
        connection = self.server.connect(primary, timeout=10, database=self.server.database)
        connection.autocommit(False)
        ids: list[int] = []
        with connection.cursor() as cursor:
            while not self.stop.is_set():
                try:
                    cursor.execute("INSERT INTO writes (client, payload) VALUES (%s, %s)", (index, ROW))
                    ids.append(cursor.lastrowid)
                    cursor.execute("UPDATE writes SET hits = hits + 1 WHERE id = %s", (random.choice(ids),))
                    connection.commit()
                except Exception:
                    with self.lock:
                        self.errors += 1
                    self.stop.wait(0.1)
                    continue
                with self.lock:
                    self.committed += 1
        connection.close()


def newest_shipped(store: ObjectStore, repository: Repository) -> datetime | None:
    objects = list_binlogs(store, repository)
    return max((o.last for o in objects if not o.empty), default=None)


def measure(server: LocalMariaDB, store: ObjectStore, repository: Repository, seconds: int, clients: int) -> None:
    primary = server.primary(timeout=120)
    server.query(primary, "CREATE TABLE writes (id BIGINT AUTO_INCREMENT PRIMARY KEY, client INT NOT NULL, "
                 "payload VARCHAR(255) NOT NULL, hits INT NOT NULL DEFAULT 0)", database=server.database)  # fmt: skip
    load = Load(server, clients)
    say(f"==> archive lag under writes ({clients} clients, {seconds}s; sampled every {SAMPLE_SECONDS:.0f}s)")
    started = time.monotonic()
    threads = load.run()
    lags: list[float] = []
    while time.monotonic() - started < seconds:
        time.sleep(SAMPLE_SECONDS)
        shipped = newest_shipped(store, repository)
        if shipped is not None:
            lags.append((datetime.now(UTC) - shipped).total_seconds())
        elapsed = time.monotonic() - started
        if int(elapsed) % 30 < SAMPLE_SECONDS:
            last = f"{lags[-1]:.0f}s" if lags else "nothing shipped yet"
            say(f"    [{elapsed:5.0f}s] {load.committed} transactions, newest shipped event {last} ago")
    load.stop.set()
    for thread in threads:
        thread.join(timeout=30)
    took = time.monotonic() - started
    shipped = list_binlogs(store, repository)
    say(f"    {load.committed} transactions in {took:.0f}s ({load.committed / took:.0f} tps), {load.errors} errors")
    say(f"    {len(shipped)} binlogs shipped, {sum(o.size for o in shipped) / 2**20:.1f} MiB sealed")
    if lags:
        ordered = sorted(lags)
        say(f"    archive lag (now - newest shipped event): mean {statistics.fmean(lags):.0f}s, "
            f"p50 {ordered[len(ordered) // 2]:.0f}s, max {ordered[-1]:.0f}s over {len(lags)} samples")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--members", type=int, default=2, help="2: Multi-AZ (semi-synchronous commits)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        say("run as root: mariadbd runs as the mysql user")
        return 2
    with harness() as (cluster, namespace, workdir, s3):
        ca = (s3.workdir / "tls.crt").read_text()
        access = StoreAccess(ACCESS_KEY, SECRET_KEY, "the passphrase of this bench", ca)
        repository = Repository(ObjectStoreTarget(BUCKET, endpoint=s3.endpoint, ca_bundle=ca),
                                f"/bench/{namespace}", "load", encrypted=True)  # fmt: skip
        store = ObjectStore(repository.store, ACCESS_KEY, SECRET_KEY)
        plan = BackupPlan(repository, retention_days=1)
        data = Path(tempfile.mkdtemp(prefix="m", dir=workdir))
        with LocalMariaDB(cluster, namespace, "load", data, args.members, synchronous=args.members > 1,
                          backup=plan, store=access) as server:  # fmt: skip
            measure(server, store, repository, args.seconds, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
