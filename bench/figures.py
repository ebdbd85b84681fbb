"""Shared by the benchmarks: percentiles and one-line summaries of measured durations."""

from __future__ import annotations

import statistics


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (with few samples, p99 is the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def seconds_summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 50):.2f}s  p99 {percentile(values, 99):.2f}s  max {max(values):.2f}s  "
            f"mean {statistics.mean(values):.2f}s  (n={len(values)})")  # fmt: skip
