"""Many clients at once, each on its own connection, inserting numbered rows and remembering
which commits were acknowledged and which statements failed (and when)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg


@dataclass
class Clients:
    connect: Callable[[], psycopg.Connection]  # one client's connection (autocommit)
    count: int
    first_id: int = 0  # several runs over one table each take their own range
    acknowledged: list[int] = field(default_factory=list)
    ack_times: list[tuple[float, float]] = field(default_factory=list)  # (sent, acknowledged)
    errors: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Clients:
        for index in range(self.count):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, index: int) -> None:
        next_id, conn = self.first_id + index * 10_000_000 + 1, None
        while not self._stop.is_set():
            row_id, next_id = next_id, next_id + 1
            sent = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = self.connect()
                conn.execute("INSERT INTO writes (id) VALUES (%s)", (row_id,))
                with self._lock:
                    self.acknowledged.append(row_id)
                    self.ack_times.append((sent, time.monotonic()))
            except psycopg.Error as error:
                with self._lock:
                    self.errors.append((time.monotonic(), str(error).strip().splitlines()[0][:200]))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    def longest_stall(self, after: float) -> float:
        """The longest time after `after` between two acknowledgements (by any client)."""
        times = sorted(acked for _, acked in self.ack_times if acked >= after)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def errors_after(self, moment: float) -> list[tuple[float, str]]:
        return [e for e in self.errors if e[0] >= moment]
