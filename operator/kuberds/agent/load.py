"""How busy a member is, for reader autoscaling: the CPU its container used between two
reports, as a share of its CPU limit (the cgroup's quota; the machine's CPUs without one).
Reads cgroup v2 (cpu.stat, cpu.max) or v1 (cpuacct.usage, cpu.cfs_quota_us)."""

from __future__ import annotations

import os
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def usage_seconds(root: Path = CGROUP) -> float | None:
    """CPU seconds the cgroup has used, or None when no cgroup file can be read."""
    stat = _read(root / "cpu.stat")
    if stat:
        for line in stat.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    for directory in ("cpuacct", "cpu,cpuacct"):
        usage = _read(root / directory / "cpuacct.usage")
        if usage:
            return int(usage) / 1e9
    return None


def cpu_limit(root: Path = CGROUP) -> float:
    """CPUs the cgroup may use: its quota, else every CPU of the machine."""
    limit = _read(root / "cpu.max")
    if limit:
        quota, _, period = limit.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
    for directory in ("cpu", "cpu,cpuacct"):
        quota, period = _read(root / directory / "cpu.cfs_quota_us"), _read(root / directory / "cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            return int(quota) / int(period)
    return float(os.cpu_count() or 1)


class CpuMeter:
    """CPU used since the previous reading, in percent of the limit (None the first time)."""

    def __init__(self, root: Path = CGROUP):
        self.root = root
        self.last: tuple[float, float] | None = None  # (monotonic time, CPU seconds)

    def percent(self) -> float | None:
        used, now = usage_seconds(self.root), time.monotonic()
        if used is None:
            return None
        last, self.last = self.last, (now, used)
        if last is None or now <= last[0]:
            return None
        return round(100 * (used - last[1]) / (now - last[0]) / cpu_limit(self.root), 1)
