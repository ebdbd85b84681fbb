"""Storage autoscaling, RDS's rule: samples of a server's volume in, one decision out. Pure:
the operator keeps the samples (from the agents' reports) and acts on the decision.

RDS grows a volume when all of these hold:
  - free space is at or below the threshold (10 % by default) of the allocated size,
  - it has stayed there for at least 5 minutes,
  - at least 6 hours have passed since the volume's last change;
and grows it by the largest of a floor (10 GiB), a share of the allocated size (10 %), and the
growth the last hour predicts for the next 7 hours; never past maxSize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

GIB = 2**30

# Reasons the StorageAutoscaling condition gives (CamelCase, as condition reasons are).
GROWING = "Growing"
WATCHING = "EnoughFreeSpace"
LOW_NOT_LONG_ENOUGH = "LowSpaceNotSustained"
COOLDOWN = "Cooldown"
AT_MAX_SIZE = "AtMaxSize"
NO_SAMPLES = "NoFreeSpaceReported"


@dataclass(frozen=True)
class Sample:
    at: datetime
    size_bytes: int  # the filesystem's size as the agent sees it (statvfs)
    free_bytes: int  # free to the database (statvfs f_bavail)

    @property
    def used_bytes(self) -> int:
        return self.size_bytes - self.free_bytes

    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.size_bytes if self.size_bytes else 0.0


@dataclass(frozen=True)
class Policy:
    """The spec's part (threshold, increment, maxSize) and the operator's timings, RDS's by
    default (the operator's settings make them shorter in tests)."""

    max_bytes: int
    threshold_percent: int = 10
    increment_percent: int = 10
    floor_bytes: int = 10 * GIB
    low_for: timedelta = timedelta(minutes=5)
    cooldown: timedelta = timedelta(hours=6)
    horizon: timedelta = timedelta(hours=7)
    trend_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Decision:
    reason: str
    message: str
    grow_to_bytes: int | None = None  # None: no growth now

    @property
    def grows(self) -> bool:
        return self.grow_to_bytes is not None


def decide(samples: list[Sample], allocated_bytes: int, last_change: datetime | None, now: datetime,
           policy: Policy) -> Decision:  # fmt: skip
    """Whether to grow a volume of `allocated_bytes` now, and to what. `samples` are oldest
    first; `last_change` is when the volume's size last changed (None: not since it was
    made). Messages other than a growth's stay the same from one look to the next: they go
    into a condition, and a changed message is a status write."""
    if not samples:
        return Decision(NO_SAMPLES, "no free-space report from the server's agents yet")
    latest, threshold = samples[-1], policy.threshold_percent
    if not _low(latest, policy):
        return Decision(WATCHING, f"free space is above the {threshold}% threshold")
    low_since = _low_since(samples, policy)
    if now - low_since < policy.low_for:
        return Decision(LOW_NOT_LONG_ENOUGH,
                        f"free space at or below {threshold}% since {_when(low_since)}; the volumes grow once "
                        f"that has lasted {_ago(policy.low_for)}")  # fmt: skip
    if allocated_bytes >= policy.max_bytes:
        return Decision(AT_MAX_SIZE, f"free space at or below {threshold}% and the volumes are at maxSize "
                        f"{_size(policy.max_bytes)}: raise storage.autoscaling.maxSize to let them grow")  # fmt: skip
    if last_change is not None and now - last_change < policy.cooldown:
        again = _when(last_change + policy.cooldown)
        return Decision(COOLDOWN, f"free space at or below {threshold}%; the volumes last changed at "
                        f"{_when(last_change)} and may grow again from {again}")  # fmt: skip
    target = min(policy.max_bytes, _round_up_gib(allocated_bytes + increment(samples, allocated_bytes, now, policy)))
    return Decision(GROWING, f"{latest.free_percent():.1f}% free for {_ago(now - low_since)}: growing the volumes "
                    f"from {_size(allocated_bytes)} to {_size(target)}", grow_to_bytes=target)  # fmt: skip


def increment(samples: list[Sample], allocated_bytes: int, now: datetime, policy: Policy) -> int:
    """The largest of the floor, the share of the allocated size, and what the last hour's
    growth predicts the volume must hold beyond its size within the horizon."""
    share = allocated_bytes * policy.increment_percent // 100
    return max(policy.floor_bytes, share, predicted_shortfall(samples, allocated_bytes, now, policy))


def predicted_shortfall(samples: list[Sample], allocated_bytes: int, now: datetime, policy: Policy) -> int:
    """Used space at the end of the horizon at the last window's rate, minus the allocated
    size (0 when that fits, or when the window holds too little to measure a rate)."""
    window = [s for s in samples if now - s.at <= policy.trend_window]
    if len(window) < 2 or window[-1].at <= window[0].at:
        return 0
    rate = (window[-1].used_bytes - window[0].used_bytes) / (window[-1].at - window[0].at).total_seconds()
    predicted = window[-1].used_bytes + max(rate, 0.0) * policy.horizon.total_seconds()
    return max(0, math.ceil(predicted) - allocated_bytes)


def _low(sample: Sample, policy: Policy) -> bool:
    return sample.free_bytes * 100 <= sample.size_bytes * policy.threshold_percent


def _low_since(samples: list[Sample], policy: Policy) -> datetime:
    """The first sample of the latest unbroken run of low ones."""
    since = samples[-1].at
    for sample in reversed(samples):
        if not _low(sample, policy):
            break
        since = sample.at
    return since


def _round_up_gib(size: int) -> int:
    return math.ceil(size / GIB) * GIB  # volumes are allocated in whole GiB, as RDS's are


def _size(size: int) -> str:
    return f"{size / GIB:g}Gi" if size % (GIB // 4) == 0 else f"{size / GIB:.2f}Gi"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class History:
    """The samples of one server's volume, kept for the trend window (and the low run, which
    cannot be longer than the window needs to say "5 minutes" with the default timings)."""

    def __init__(self, keep: timedelta):
        self.keep = keep
        self.samples: list[Sample] = []

    def add(self, sample: Sample) -> None:
        if self.samples and sample.at <= self.samples[-1].at:
            return
        if self.samples and sample.size_bytes != self.samples[-1].size_bytes:
            self.samples = []  # the volume grew: the old percentages say nothing of the new size
        self.samples.append(sample)
        self.samples = [s for s in self.samples if sample.at - s.at <= self.keep]
