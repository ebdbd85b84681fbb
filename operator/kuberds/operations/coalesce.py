"""One refresh at a time per object, bursts of events coalesced, and a failed refresh tried again.

Members' events (pods, claims, StatefulSets) come in bursts and Kopf runs their handlers side by
side. Run through `Coalesced.run`, one refresh runs at a time per object; events arriving
meanwhile only mark it dirty, and the running refresh goes round once more, reading the indexes
as they are then. So a burst of N events costs about two refreshes, parallel status writers do
not refuse each other (409), and the last event is never lost.

Kopf does not retry an event handler that fails, and the event that failed may be the last one
for a while (pods that became ready): a refresh that raises `kopf.TemporaryError` is run again
after the delay it asks for, once, on a timer of its own.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import kopf

log = logging.getLogger("kuberds")

COALESCED = "coalesced into the refresh under way"


@dataclass
class Coalesced:
    lock: threading.Lock = field(default_factory=threading.Lock)
    dirty: bool = False
    retry: threading.Timer | None = None  # a look scheduled for later (a failure, a wait)

    def run(self, once: Callable[[], str]) -> str:
        """Runs `once` until no event arrived during the last run; returns what it did."""
        self.dirty = True
        actions: list[str] = []
        # The loop closes the gap between the last look at `dirty` and the release: an event
        # that lands there finds the lock taken and leaves; we take the lock again for it.
        while self.dirty and self.lock.acquire(blocking=False):
            try:
                while self.dirty:
                    self.dirty = False
                    action = self._attempt(once)
                    if not actions or action != actions[-1]:
                        actions.append(action)
            finally:
                self.lock.release()
        return "; ".join(actions) or COALESCED

    def again_after(self, delay: float, once: Callable[[], str]) -> None:
        """Looks again after `delay` seconds (one pending look at a time): no event may follow."""
        if self.retry is not None:
            return

        def run() -> None:
            self.retry = None
            log.debug("refresh again after %.0fs: %s", delay, self.run(once))

        self.retry = threading.Timer(delay, run)
        self.retry.daemon = True
        self.retry.start()

    def cancel(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None

    def _attempt(self, once: Callable[[], str]) -> str:
        try:
            return once()
        except kopf.TemporaryError as error:
            delay = float(error.delay or 1.0)
            self.again_after(delay, once)
            return f"{error}; again in {delay:.0f}s"


_states: dict[tuple[str, ...], Coalesced] = defaultdict(Coalesced)


def run(key: tuple[str, ...], once: Callable[[], str]) -> str:
    """`once` coalesced with the other refreshes of the object `key` names."""
    return _states[key].run(once)


def forget(key: tuple[str, ...]) -> None:
    """The object is gone: drop its state and any look scheduled for it."""
    _states.pop(key, Coalesced()).cancel()
