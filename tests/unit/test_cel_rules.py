"""The CEL window helpers, checked by evaluating the same arithmetic in Python.

The API server runs the real CEL (tests/cluster/test_api_validation.py); here the
arithmetic is checked exhaustively on a grid, which a handful of cluster cases cannot do.
"""

from __future__ import annotations

import re

from kuberds.api import rules


def evaluate(expression: str, **strings: str) -> object:
    """A tiny CEL-to-Python shim for exactly the constructs the helpers emit."""
    python = re.sub(r"(\w+)\.matches\(('[^']*')\)", r"(_re.search(\2, \1) is not None)", expression)
    python = python.replace("!", " not ").replace(" not =", "!=").replace("||", " or ")
    python = python.replace("&&", " and ")
    python = re.sub(r"(\w+(?:\.\w+)*)\.substring\((\d+), (\d+)\)", r"\1[\2:\3]", python)
    python = python.replace(".indexOf(", ".index(")
    python = re.sub(r"\((\d+) / 3\)", r"(\1 // 3)", python)
    python = python.replace(") / 3)", ") // 3)")
    return eval(python, {"_re": re, **strings})  # expressions our own helpers generated


def minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def test_daily_length_and_minimum() -> None:
    for window, length in (
        ("03:00-03:30", 30),
        ("23:50-00:20", 30),
        ("03:00-03:29", 29),
        ("10:00-09:00", 1380),
    ):
        assert evaluate(rules.daily_length("w"), w=window) == length
        assert evaluate(rules.daily_window_long_enough("w"), w=window) == (length >= 30)


def test_weekly_length_wraps_the_week() -> None:
    assert evaluate(rules.weekly_length("m"), m="sun:23:00-mon:01:00") == 120
    assert evaluate(rules.weekly_length("m"), m="mon:00:00-mon:00:30") == 30
    assert evaluate(rules.weekly_window_long_enough("m"), m="tue:05:00-tue:05:10") is False


def test_overlap_matches_a_brute_force_check() -> None:
    expression = rules.windows_do_not_overlap("b", "m")
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    for backup in ("03:00-03:30", "23:45-00:15", "05:00-06:00"):
        for maintenance in (
            "sun:05:00-sun:05:30",
            "mon:00:00-mon:00:30",
            "sat:23:50-sun:00:20",
            "wed:03:20-wed:04:00",
        ):
            b0, b1 = minutes(backup[:5]), minutes(backup[6:])
            b_len = (b1 - b0) % 1440
            m0 = days.index(maintenance[:3]) * 1440 + minutes(maintenance[4:9])
            m_len = (days.index(maintenance[10:13]) * 1440 + minutes(maintenance[14:]) - m0) % 10080
            busy = {(d * 1440 + b0 + i) % 10080 for d in range(7) for i in range(b_len)}
            overlap = any((m0 + i) % 10080 in busy for i in range(m_len))
            assert evaluate(expression, b=backup, m=maintenance) == (not overlap), (backup, maintenance)


def test_a_malformed_window_gets_the_pattern_message_alone() -> None:
    """The rules that take a window apart pass on a malformed one (the pattern refuses it), so
    the API server reports the format, not "index out of range" or a false overlap."""
    for bad in ("3:00-4:00", "03:00", "", "sun:05:00-sun:06:00"):
        assert evaluate(rules.daily_window_long_enough("w"), w=bad) is True
        assert evaluate(rules.windows_do_not_overlap("b", "m"), b=bad, m="sun:05:00-sun:05:30") is True
    for bad in ("Sun:05:00-Sun:06:00", "sun:5:00-sun:6:00", "03:00-03:30"):
        assert evaluate(rules.weekly_window_long_enough("m"), m=bad) is True
        assert evaluate(rules.windows_do_not_overlap("b", "m"), b="03:00-03:30", m=bad) is True
