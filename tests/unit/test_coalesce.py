"""Coalesced refreshes: one at a time, the last event never lost, a failure looked at again."""

from __future__ import annotations

import threading
import time

import kopf

from kuberds.operations.coalesce import COALESCED, Coalesced


def test_events_during_a_refresh_cost_one_more_round_that_sees_the_latest_state() -> None:
    state, seen, started, release = Coalesced(), [], threading.Event(), threading.Event()
    latest = {"value": 0}

    def once() -> str:
        value = latest["value"]
        seen.append(value)
        if len(seen) == 1:
            started.set()
            release.wait(5)
        return f"saw {value}"

    first: list[str] = []
    runner = threading.Thread(target=lambda: first.append(state.run(once)))
    runner.start()
    assert started.wait(5)
    answers = []
    for value in (1, 2, 3):  # a burst while the first refresh runs
        latest["value"] = value
        answers.append(state.run(once))
    release.set()
    runner.join(5)
    assert answers == [COALESCED] * 3
    assert seen == [0, 3], "one more round, with what the burst left, not one per event"
    assert first == ["saw 0; saw 3"]


def test_no_event_is_lost_between_the_last_round_and_the_release() -> None:
    # An event lands exactly in the gap: after the running refresh saw nothing dirty, before it
    # lets the lock go. That event finds the lock taken and leaves; its round must still run.
    state, rounds = Coalesced(), []

    class GapLock:
        def __init__(self) -> None:
            self.inner, self.first = threading.Lock(), True

        def acquire(self, blocking: bool = True) -> bool:
            return self.inner.acquire(blocking)

        def release(self) -> None:
            if self.first:
                self.first = False
                late = threading.Thread(target=lambda: rounds.append(("late event", state.run(once))))
                late.start()
                late.join(5)
            self.inner.release()

    def once() -> str:
        rounds.append("round")
        return "ok"

    state.lock = GapLock()
    state.run(once)
    assert rounds == ["round", ("late event", COALESCED), "round"], "the event in the gap got its round"


def test_a_refresh_that_must_wait_is_run_again_after_the_delay_it_asks_for() -> None:
    state, calls, again = Coalesced(), [], threading.Event()

    def once() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise kopf.TemporaryError("patch CacheCluster: 409 conflict", delay=0.2)
        again.set()
        return "status"

    assert state.run(once) == "patch CacheCluster: 409 conflict; again in 0s"
    assert again.wait(5), "the failed refresh was not looked at again"
    assert calls[1] - calls[0] >= 0.2
    assert state.retry is None


def test_a_cancelled_look_does_not_run() -> None:
    state, calls = Coalesced(), []
    state.again_after(0.1, lambda: calls.append(1) or "ran")
    state.cancel()
    time.sleep(0.3)
    assert calls == []
