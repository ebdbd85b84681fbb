"""RDS's storage-autoscaling rule: samples in, decision out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kuberds.operations.autoscaling import (
    AT_MAX_SIZE,
    COOLDOWN,
    GIB,
    GROWING,
    LOW_NOT_LONG_ENOUGH,
    NO_SAMPLES,
    WATCHING,
    History,
    Policy,
    Sample,
    decide,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POLICY = Policy(max_bytes=1000 * GIB)


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def samples(size_gib: float, free_gib_by_minutes_ago: dict[float, float]) -> list[Sample]:
    size = int(size_gib * GIB)
    return [Sample(minutes_ago(m), size, int(free * GIB)) for m, free in sorted(free_gib_by_minutes_ago.items(),
                                                                                 reverse=True)]  # fmt: skip


def test_no_report_no_growth() -> None:
    assert decide([], 100 * GIB, None, NOW, POLICY).reason == NO_SAMPLES


def test_above_the_threshold_it_only_watches() -> None:
    decision = decide(samples(100, {10: 30, 0: 11}), 100 * GIB, None, NOW, POLICY)
    assert (decision.reason, decision.grows) == (WATCHING, False)
    assert decision.message == "free space is above the 10% threshold"


def test_low_for_less_than_five_minutes_waits() -> None:
    decision = decide(samples(100, {10: 20, 4: 10, 0: 5}), 100 * GIB, None, NOW, POLICY)
    assert decision.reason == LOW_NOT_LONG_ENOUGH and not decision.grows
    assert decision.message == (
        "free space at or below 10% since 2026-12-04T11:56:00Z; the volumes grow once that has lasted 5m"
    )


def test_a_run_broken_by_a_high_sample_starts_again() -> None:
    decision = decide(samples(100, {10: 5, 6: 5, 3: 50, 2: 5, 0: 5}), 100 * GIB, None, NOW, POLICY)
    assert decision.reason == LOW_NOT_LONG_ENOUGH


def test_exactly_at_the_threshold_for_five_minutes_grows_by_the_floor_on_a_small_volume() -> None:
    # 10 % of 20 GiB is 2 GiB, less than the 10 GiB floor; the trend is flat.
    decision = decide(samples(20, {5: 2, 0: 2}), 20 * GIB, None, NOW, POLICY)
    assert decision.reason == GROWING and decision.grow_to_bytes == 30 * GIB


def test_a_large_volume_grows_by_its_share() -> None:
    decision = decide(samples(500, {6: 40, 0: 40}), 500 * GIB, None, NOW, POLICY)
    assert decision.grow_to_bytes == 550 * GIB


def test_a_fast_fill_grows_by_the_next_seven_hours_predicted_from_the_last_hour() -> None:
    # Used went from 70 to 95 GiB in the hour: 25 GiB/h, 175 GiB more in 7 h → 270 GiB used,
    # 170 GiB more than the 100 GiB allocated, more than the floor and the share.
    decision = decide(samples(100, {60: 30, 30: 18, 6: 6, 0: 5}), 100 * GIB, None, NOW, POLICY)
    assert decision.grow_to_bytes == 270 * GIB


def test_only_the_last_hour_counts_for_the_trend() -> None:
    # A fast fill two hours ago, flat within the hour: the floor wins.
    decision = decide(samples(100, {120: 90, 59: 5, 0: 5}), 100 * GIB, None, NOW, POLICY)
    assert decision.grow_to_bytes == 110 * GIB


def test_never_past_max_size_and_at_max_size_it_says_so() -> None:
    policy = Policy(max_bytes=25 * GIB)
    assert decide(samples(20, {6: 1, 0: 1}), 20 * GIB, None, NOW, policy).grow_to_bytes == 25 * GIB
    at_max = decide(samples(25, {6: 1, 0: 1}), 25 * GIB, None, NOW, policy)
    assert at_max.reason == AT_MAX_SIZE and not at_max.grows
    assert "maxSize 25Gi" in at_max.message


def test_six_hours_must_pass_since_the_last_change() -> None:
    low = samples(20, {10: 1, 0: 1})
    cooling = decide(low, 20 * GIB, NOW - timedelta(hours=5, minutes=30), NOW, POLICY)
    assert cooling.reason == COOLDOWN and not cooling.grows
    assert cooling.message.endswith("last changed at 2026-12-04T06:30:00Z and may grow again from 2026-12-04T12:30:00Z")
    assert decide(low, 20 * GIB, NOW - timedelta(hours=6), NOW, POLICY).reason == GROWING


def test_sizes_are_whole_gib_and_short_timings_come_from_the_policy() -> None:
    # The e2e's settings: 1 GiB volumes, a 256 MiB floor, seconds instead of hours.
    policy = Policy(max_bytes=3 * GIB, floor_bytes=GIB // 4, low_for=timedelta(seconds=20),
                    cooldown=timedelta(seconds=60))  # fmt: skip
    low = [Sample(NOW - timedelta(seconds=s), GIB, GIB // 20) for s in (30, 0)]
    assert decide(low, GIB, None, NOW, policy).grow_to_bytes == 2 * GIB


def test_history_keeps_the_window_and_forgets_an_old_size() -> None:
    history = History(keep=timedelta(minutes=61))
    for minute in range(120, -1, -1):
        history.add(Sample(minutes_ago(minute), 100 * GIB, 50 * GIB))
    assert len(history.samples) == 62
    history.add(Sample(NOW + timedelta(seconds=1), 200 * GIB, 150 * GIB))
    assert [s.size_bytes for s in history.samples] == [200 * GIB]
    history.add(Sample(NOW, 200 * GIB, 1))  # older than the last: ignored
    assert len(history.samples) == 1
