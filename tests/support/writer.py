"""A client that keeps inserting numbered rows and remembers which commits were acknowledged.

It connects like an application would: to every member with target_session_attrs=read-write,
so it finds the new primary after a failover, with short timeouts (a frozen primary must not
hang it). Durability is then a set comparison: acknowledged ⊆ present.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass, field

import psycopg


@dataclass
class Writer:
    hosts: list[tuple[str, int]]
    password: str
    user: str = "app"
    dbname: str = "app"
    first_id: int = 1  # several writers over one table each take their own range
    acknowledged: list[int] = field(default_factory=list)
    ack_times: list[tuple[float, float]] = field(default_factory=list)  # (sent, acknowledged)
    errors: int = 0
    error_times: list[float] = field(default_factory=list)
    _answers: dict[int, bool] = field(default_factory=dict)
    _sent: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def conninfo(self) -> str:
        hosts = ",".join(h for h, _ in self.hosts)
        ports = ",".join(str(p) for _, p in self.hosts)
        return (f"host={hosts} port={ports} user={self.user} password={self.password} dbname={self.dbname} "
                "target_session_attrs=read-write connect_timeout=2 options='-c statement_timeout=3000'")  # fmt: skip

    def prepare(self) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        """A statement that gets no answer within 3 s is abandoned with its connection (a
        frozen server never answers, and a cancel request would go to the frozen postmaster
        too). If its answer comes later anyway, it counts as acknowledged: an application
        would have seen that commit succeed."""
        pool = ThreadPoolExecutor(max_workers=64)
        next_id, conn = self.first_id, None
        while not self._stop.is_set():
            row_id = next_id
            next_id += 1  # an id whose outcome is unknown is never reused
            try:
                if conn is None or conn.closed:
                    conn = pool.submit(psycopg.connect, self.conninfo(), autocommit=True).result(timeout=10)
                self._sent[row_id] = time.monotonic()
                pool.submit(conn.execute, "INSERT INTO writes (id) VALUES (%s)", (row_id,)).add_done_callback(
                    lambda done, i=row_id: self._answered(done, i)
                )
                deadline = time.monotonic() + 3
                while row_id not in self._answers and time.monotonic() < deadline:
                    time.sleep(0.002)
                if self._answers.get(row_id) is not True:
                    raise TimeoutError if row_id not in self._answers else psycopg.OperationalError()
            except (psycopg.Error, TimeoutError, FuturesTimeout):
                self.errors += 1
                self.error_times.append(time.monotonic())
                conn = None  # abandoned, not closed: closing would block on a frozen server
                time.sleep(0.05)
            time.sleep(0.005)
        pool.shutdown(wait=False, cancel_futures=True)

    def _answered(self, done, row_id: int) -> None:
        ok = done.exception() is None
        self._answers[row_id] = ok
        if ok:
            self.acknowledged.append(row_id)
            self.ack_times.append((self._sent[row_id], time.monotonic()))

    def first_ack_after(self, moment: float) -> float | None:
        """When the first statement sent after `moment` was acknowledged."""
        return min((acked for sent, acked in self.ack_times if sent > moment), default=None)

    def recovered_after(self, disrupted: float) -> float | None:
        """Seconds from a disruption to the first acknowledged write after the first failed
        one (a statement in flight at the moment of the disruption may still succeed)."""
        failed = next((t for t in self.error_times if t > disrupted), None)
        acked = self.first_ack_after(failed) if failed is not None else None
        return None if acked is None else acked - disrupted

    def missing(self) -> list[int]:
        """Acknowledged ids the current primary does not have."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            present = {row[0] for row in conn.execute("SELECT id FROM writes WHERE id >= %s", (self.first_id,))}
        return sorted(i for i in self.acknowledged if i not in present)
