"""Reader autoscaling (Aurora Auto Scaling's target tracking), decided by the operator from
the readers' own reports. Pure: the readers' load in, the number of readers out, with why.

- The metric is the readers' average CPU (percent of their limit) or client sessions; the
  wanted count is the one that would bring the average to the target:
  ceil(readers * average / target), within [minReaders, maxReaders].
- Out at once to the wanted count, unless the last change was out and within
  scaleOutCooldownSeconds; in by one reader at a time, and only scaleInCooldownSeconds after
  any change (a burst's end is not a trend).
- Never below the durability a cluster has: one with two readers or more keeps two (its
  commits wait for a reader even when one is lost), one with a reader keeps one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from kuberds.api import v1alpha1 as api

DEFAULT_CPU_TARGET = 70
OUT, IN = "out", "in"


@dataclass(frozen=True)
class Decision:
    readers: int
    reason: str
    direction: str | None = None  # OUT / IN when it changes the count


def metric(policy: api.ReaderAutoscaling) -> tuple[str, float]:
    """(what is averaged, its target)."""
    if policy.target_connections:
        return "clientConnections", float(policy.target_connections)
    return "cpuPercent", float(policy.target_cpu_percent or DEFAULT_CPU_TARGET)


def floor(policy: api.ReaderAutoscaling, readers: int) -> int:
    return max(policy.min_readers, min(readers, 2))


def decide(policy: api.ReaderAutoscaling, readers: int, loads: list[float], last_change: datetime | None,
           last_direction: str | None, now: datetime) -> Decision:  # fmt: skip
    """`loads`: the metric as each ready reader reports it now."""
    name, target = metric(policy)
    low, high = floor(policy, readers), policy.max_readers
    if readers < low or readers > high:  # the bounds moved: back inside them first
        wanted = min(max(readers, low), high)
        return Decision(wanted, f"{readers} readers is outside [{low}, {high}]", OUT if wanted > readers else IN)
    if not loads:
        return Decision(readers, f"no reader reports {name} yet")
    average = sum(loads) / len(loads)
    wanted = min(max(math.ceil(readers * average / target), low), high)
    said = f"average {name} {average:.1f} over {len(loads)} reader(s), target {target:g}"
    since = (now - last_change).total_seconds() if last_change else math.inf
    if wanted > readers:
        if last_direction == OUT and since < policy.scale_out_cooldown_seconds:
            return Decision(readers, f"{said}: would add readers, scale-out cooldown ({since:.0f} s of "
                                     f"{policy.scale_out_cooldown_seconds})")  # fmt: skip
        return Decision(wanted, f"{said}: {readers} → {wanted} readers", OUT)
    if wanted < readers:
        if since < policy.scale_in_cooldown_seconds:
            return Decision(readers, f"{said}: would remove a reader, scale-in cooldown ({since:.0f} s of "
                                     f"{policy.scale_in_cooldown_seconds})")  # fmt: skip
        return Decision(readers - 1, f"{said}: {readers} → {readers - 1} readers", IN)
    return Decision(readers, f"{said}: {readers} readers is right")
