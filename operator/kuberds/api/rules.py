"""CEL building blocks shared by several kinds' validation rules.

Kept as small Python functions so each rule reads as what it checks, and is tested as
data (tests/unit/test_api_schema.py) and against a real API server (tests/cluster).
"""

from __future__ import annotations

DAYS = "montuewedthufrisatsun"  # 3 letters a day: indexOf(day) / 3 is the day number
HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"
DAY = "(mon|tue|wed|thu|fri|sat|sun)"
DAILY_WINDOW_PATTERN = f"^{HHMM}-{HHMM}$"
WEEKLY_WINDOW_PATTERN = f"^{DAY}:{HHMM}-{DAY}:{HHMM}$"
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MIN_WINDOW_MINUTES = 30


def _hhmm(expr: str, at: int) -> str:
    """Minutes since midnight of the "HH:MM" that starts at index `at` of string `expr`."""
    return f"(int({expr}.substring({at}, {at + 2})) * 60 + int({expr}.substring({at + 3}, {at + 5})))"


def daily_start(expr: str) -> str:
    return _hhmm(expr, 0)


def daily_length(expr: str) -> str:
    return _mod(f"{_hhmm(expr, 6)} - {_hhmm(expr, 0)}", MINUTES_PER_DAY)


def _weekly_point(expr: str, at: int) -> str:
    day = f"({DAYS!r}.indexOf({expr}.substring({at}, {at + 3})) / 3)"
    return f"({day} * {MINUTES_PER_DAY} + {_hhmm(expr, at + 4)})"


def weekly_start(expr: str) -> str:
    return _weekly_point(expr, 0)


def weekly_length(expr: str) -> str:
    return _mod(f"{_weekly_point(expr, 10)} - {_weekly_point(expr, 0)}", MINUTES_PER_WEEK)


def _mod(expr: str, n: int) -> str:
    """A non-negative modulo (CEL's % keeps the sign of the dividend)."""
    return f"((({expr}) % {n} + {n}) % {n})"


def daily_window_long_enough(expr: str = "self") -> str:
    return f"{daily_length(expr)} >= {MIN_WINDOW_MINUTES}"


def weekly_window_long_enough(expr: str = "self") -> str:
    return f"{weekly_length(expr)} >= {MIN_WINDOW_MINUTES}"


def windows_do_not_overlap(daily: str, weekly: str) -> str:
    """True when a daily window (every day) never meets a weekly one.

    Two arcs [a, a+la) and [b, b+lb) of a circle of length W overlap exactly when
    (b - a) mod W < la or (a - b) mod W < lb; the daily window is tried on each day.
    """
    a = f"(d * {MINUTES_PER_DAY} + {daily_start(daily)})"
    b = weekly_start(weekly)
    la, lb = daily_length(daily), weekly_length(weekly)
    overlap = (
        f"{_mod(f'{b} - {a}', MINUTES_PER_WEEK)} < {la} || {_mod(f'{a} - {b}', MINUTES_PER_WEEK)} < {lb}"
    )
    return f"![0, 1, 2, 3, 4, 5, 6].exists(d, {overlap})"


def quantity_at_least(left: str, right: str) -> str:
    return f"quantity({left}).compareTo(quantity({right})) >= 0"


def exactly_one_of(*fields: str) -> str:
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"


def at_most_one_of(*fields: str) -> str:
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " <= 1"
