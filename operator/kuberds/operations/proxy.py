"""Holding the proxy's clients through a planned switchover.

PAUSE every proxy pod (each waits until its server connections are back in the pool, and
queues new transactions), switch over, wait until the writer endpoint leads to the new
primary, RECONNECT (no pooled connection to the old primary is used again), RESUME. Clients
see a stall of about the switchover's length and no error. Every step is bounded: a pause
that does not complete (a long transaction, session pooling) is given up and the switchover
goes on; RESUME is sent whatever happened, and the outcome says what it cost.

This runs inside one call, not across handler invocations: a pause must never outlive the
code that will end it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from kuberds.contract.proxy import CONSOLE_DATABASE, CONSOLE_USER

PAUSE_TIMEOUT_SECONDS = 10.0  # in-flight transactions get this long to finish
MOVE_TIMEOUT_SECONDS = 20.0  # for the writer endpoint to lead to the new primary
# After the endpoint moved: the node proxies (kube-proxy) apply it within about a second.
SETTLE_SECONDS = 1.0
CONSOLE_TIMEOUT_SECONDS = 5.0


class ConsoleError(RuntimeError):
    pass


@dataclass(frozen=True)
class Console:
    """One proxy pod's admin console."""

    name: str  # the pod's, for messages
    host: str
    port: int
    password: str

    def run(self, statement: str, timeout: float = CONSOLE_TIMEOUT_SECONDS) -> None:
        """Sends one console command and waits at most `timeout` for it to finish (PAUSE
        waits for transactions); raises ConsoleError when it failed or did not finish."""
        outcome: list[BaseException | None] = []

        def send() -> None:
            try:
                with psycopg.connect(host=self.host, port=self.port, dbname=CONSOLE_DATABASE, user=CONSOLE_USER,
                                     password=self.password, autocommit=True, connect_timeout=3,
                                     prepare_threshold=None) as conn:  # fmt: skip
                    conn.cursor().execute(statement)  # the console takes the simple protocol only
                outcome.append(None)
            except psycopg.Error as error:
                outcome.append(error)

        worker = threading.Thread(target=send, daemon=True, name=f"console-{self.name}")
        worker.start()
        worker.join(timeout)
        if not outcome:
            raise ConsoleError(f"{statement} on {self.name} did not finish within {timeout:.0f}s")
        if outcome[0] is not None:
            raise ConsoleError(f"{statement} on {self.name} failed: {outcome[0]}")


@dataclass
class Held:
    """What a held switchover did, readable ("paused 2 proxies; …")."""

    answer: str = ""
    paused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each a sentence: what did not go to plan
    stall_seconds: float = 0.0
    moved: bool = False

    @property
    def clean(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        held = f"held {len(self.paused)} proxy pod(s) for {self.stall_seconds:.1f}s"
        return held + ("" if self.clean else "; " + "; ".join(self.problems))


def _each(consoles: list[Console], statement: str, timeout: float) -> dict[str, str]:
    """The command on every console at once; the problems, by console."""
    problems: dict[str, str] = {}

    def one(console: Console) -> None:
        try:
            console.run(statement, timeout)
        except ConsoleError as error:
            problems[console.name] = str(error)

    threads = [threading.Thread(target=one, args=(c,), daemon=True) for c in consoles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 5)
    return problems


def held_switchover(consoles: list[Console], switch: Callable[[], str], writer_moved: Callable[[], bool], *,
                    pause_timeout: float = PAUSE_TIMEOUT_SECONDS, move_timeout: float = MOVE_TIMEOUT_SECONDS,
                    settle: float = SETTLE_SECONDS) -> Held:  # fmt: skip
    """PAUSE → `switch()` → until `writer_moved()` → RECONNECT → RESUME. `switch` raises to
    refuse (the proxies are resumed first); its answer is kept."""
    held, began = Held(), time.monotonic()
    try:
        problems = _each(consoles, "PAUSE", pause_timeout)
        held.paused = [c.name for c in consoles if c.name not in problems]
        if problems:
            held.problems += [*problems.values(),
                              "switched over without every pause: clients of those pods may see errors"]  # fmt: skip
        held.answer = switch()
        deadline = time.monotonic() + move_timeout
        held.moved = writer_moved()
        while not held.moved and time.monotonic() < deadline:
            time.sleep(0.2)
            held.moved = writer_moved()
        if not held.moved:
            held.problems.append(f"the writer endpoint did not lead to the new primary within {move_timeout:.0f}s")
        time.sleep(settle)
        held.problems += _each(consoles, "RECONNECT", CONSOLE_TIMEOUT_SECONDS).values()
    finally:
        # Whatever happened: a paused proxy serves nobody.
        held.problems += _each(consoles, "RESUME", CONSOLE_TIMEOUT_SECONDS).values()
        held.stall_seconds = time.monotonic() - began
    return held
