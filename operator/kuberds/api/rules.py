"""CEL building blocks shared by several kinds' validation rules.

Kept as small Python functions so each rule reads as what it checks, and is tested as
data (tests/unit/test_api_schema.py) and against a real API server (tests/cluster).
"""

from __future__ import annotations

from kuberds.api.schema import Rule

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


def well_formed(expr: str, pattern: str) -> str:
    """Every rule that takes a value apart first checks its form: a malformed value then gets
    the pattern's message alone, not a rule failing at run time (index out of range)."""
    return f"{expr}.matches({pattern!r})"


def daily_window_long_enough(expr: str = "self") -> str:
    return f"!{well_formed(expr, DAILY_WINDOW_PATTERN)} || {daily_length(expr)} >= {MIN_WINDOW_MINUTES}"


def weekly_window_long_enough(expr: str = "self") -> str:
    return f"!{well_formed(expr, WEEKLY_WINDOW_PATTERN)} || {weekly_length(expr)} >= {MIN_WINDOW_MINUTES}"


def window_long_enough(field: str, *, weekly: bool) -> Rule:
    """The rule on a window field (daily HH:MM-HH:MM or weekly ddd:HH:MM-ddd:HH:MM)."""
    check = weekly_window_long_enough() if weekly else daily_window_long_enough()
    return Rule(check, f"{field} must be at least {MIN_WINDOW_MINUTES} minutes long",
                message_expression=f"'{field} ' + self + ' is shorter than {MIN_WINDOW_MINUTES} minutes: it must be "
                                   f"at least {MIN_WINDOW_MINUTES} minutes long'")  # fmt: skip


def windows_do_not_overlap(daily: str, weekly: str) -> str:
    """True when a daily window (every day) never meets a weekly one.

    The daily window repeats every 1440 minutes, so the weekly window meets one of its
    days exactly when, taken modulo a day, it meets the daily arc; a weekly window of a
    day or more meets it always. Two arcs [a, a+la) and [b, b+lb) of a circle overlap
    exactly when (b - a) mod W < la or (a - b) mod W < lb. (No loop over days: CEL cost
    is paid on every write of the object.)
    """
    a, la = daily_start(daily), daily_length(daily)
    b, lb = weekly_start(weekly), weekly_length(weekly)
    day = MINUTES_PER_DAY
    formed = f"{well_formed(daily, DAILY_WINDOW_PATTERN)} && {well_formed(weekly, WEEKLY_WINDOW_PATTERN)}"
    return f"!({formed}) || ({lb} < {day} && {_mod(f'{b} - {a}', day)} >= {la} && {_mod(f'{a} - {b}', day)} >= {lb})"


def quantity_at_least(left: str, right: str) -> str:
    return f"quantity({left}).compareTo(quantity({right})) >= 0"


def exactly_one_of(*fields: str) -> str:
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"


# Kubernetes label keys (an optional DNS-subdomain prefix and a name of at most 63) and values.
LABEL_NAME = "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = f"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{LABEL_NAME}$"
LABEL_VALUE_PATTERN = f"^({LABEL_NAME})?$"
LABEL_KEY_MAX = 317  # a 253-character prefix, "/", a 63-character name


def label_keys_valid(expr: str = "self") -> str:
    return f"{expr}.all(k, k.size() <= {LABEL_KEY_MAX} && k.matches({LABEL_KEY_PATTERN!r}))"
