"""Plain-text helpers: columns, times and ages. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_precise(text: str | None) -> tuple[datetime, int] | None:
    """An RFC 3339 time as (the second, in UTC; nanoseconds): the kubelet's log timestamps
    carry nanoseconds, and drop trailing zeros, so neither strings nor microseconds order them."""
    if not text:
        return None
    match = _TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7) or "", match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if offset and offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment, int(fraction.ljust(9, "0")) if fraction else 0


def parse_time(text: str | None) -> datetime | None:
    parsed = parse_precise(text)
    if parsed is None:
        return None
    moment, nanos = parsed
    return moment + timedelta(microseconds=nanos // 1000)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(text: str | None, now: datetime) -> str:
    """How long ago, as kubectl says it: 42s, 5m, 3h, 12d ("-" when unknown)."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def when(text: str | None, now: datetime) -> str:
    """A time and how long ago it was: 2026-05-01T03:04:05Z (3h ago)."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    ago = age(text, now)
    return f"{rfc3339(moment)} ({ago} ago)" if moment <= now else f"{rfc3339(moment)} (in the future)"


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last one is not padded."""
    cells = [headers, *[[("-" if c is None or c == "" else str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append((indent + "  ".join(padded)).rstrip())
    return lines


def fields(pairs: list[tuple[str, str | None]], indent: str = "  ") -> list[str]:
    """Label: value lines, the values aligned; pairs without a value are left out."""
    shown = [(label, value) for label, value in pairs if value not in (None, "")]
    width = max((len(label) for label, _ in shown), default=0) + 1
    return [f"{indent}{(label + ':').ljust(width)}  {value}" for label, value in shown]


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def seconds(value: float | int | None) -> str:
    return "-" if value is None else f"{float(value):.1f}s"


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> int:
    """10m, 1h30m, 45s, 2d, or a plain number of seconds; ValueError otherwise."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 2h or 1h30m")
    return sum(int(n) * _UNIT[u] for n, u in parts)
