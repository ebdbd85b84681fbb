"""Engine parameters as an allow-list: each parameter a user may set, with its type and range
(what an RDS parameter group's "modifiable" column says). Values are judged here, before they
reach a configuration file, so a bad one is a condition that names it, not a server that runs
without it or does not start. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# An engine's units, by what they measure, in bytes or seconds.
MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
TRUTHS = {"on", "off", "true", "false", "yes", "no", "1", "0"}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_STRING = 1024


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # bool, integer, real, enum, string
    unit: str | None = None  # the base unit ranges are in: kB, 8kB, MB, ms, s, min, …
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] = ()  # an enum's

    def problem(self, value: str) -> str | None:
        """Why `value` is not one this parameter takes (None: it is)."""
        if CONTROL.search(value) or len(value) > MAX_STRING:
            return f"{value!r} has control characters or is longer than {MAX_STRING} characters"
        if self.type == "bool":
            return None if value.strip().lower() in TRUTHS else f"{value!r} is not on or off"
        if self.type == "enum":
            if value.strip().lower() in (v.lower() for v in self.values):
                return None
            return f"{value!r} is not one of {', '.join(self.values)}"
        if self.type in ("integer", "real"):
            return self._number_problem(value)
        return None

    def _number_problem(self, value: str) -> str | None:
        match = NUMBER.match(value)
        family, base = _family(self.unit)
        if match is None or (match.group(2) and match.group(2) not in family):
            units = f" with {', '.join(family)} ({self.unit} when none)" if family else ""
            return f"{value!r} is not a number{units}"
        number = float(match.group(1)) * (family[match.group(2)] / base if match.group(2) else 1)
        if self.type == "integer" and not match.group(2) and not number.is_integer():
            return f"{value!r} is not a whole number"
        if self.minimum is not None and number < self.minimum:
            return f"{value} is below the minimum, {_amount(self.minimum, self.unit)}"
        if self.maximum is not None and number > self.maximum:
            return f"{value} is above the maximum, {_amount(self.maximum, self.unit)}"
        return None


def _family(unit: str | None) -> tuple[dict[str, float], float]:
    """The units a value may carry, and how much one base unit is in them (8kB: 8192 bytes)."""
    if not unit:
        return {}, 1.0
    match = re.fullmatch(r"(\d*)(\w+)", unit)
    scale, name = int(match.group(1) or 1), match.group(2)
    for family in (MEMORY, TIME):
        if name in family:
            return family, scale * family[name]
    return {}, 1.0


def _amount(number: float, unit: str | None) -> str:
    shown = int(number) if float(number).is_integer() else number
    return f"{shown}{' ' + unit if unit else ''}"


def problems(allowed: Mapping[str, Parameter], given: Mapping[str, str], engine: str) -> list[str]:
    """One line per parameter the engine's allow-list refuses, naming it."""
    lines = []
    for name, value in given.items():
        parameter = allowed.get(name.lower())
        if parameter is None:
            lines.append(f"parameters.{name}: not a {engine} parameter users may set (see the allowed list in "
                         "the API reference)")  # fmt: skip
        elif problem := parameter.problem(value):
            lines.append(f"parameters.{name}: {problem}")
    return lines


def table(rows: Mapping[str, list]) -> dict[str, Parameter]:
    """The allow-list from generated data (name → [type, unit, minimum, maximum, values]), by
    lower-case name: the engines read parameter names without regard to case."""
    entries = {name: row for name, row in rows.items() if not name.startswith("_")}  # "_": where it came from
    return {
        name.lower(): Parameter(name, kind, unit, minimum, maximum, tuple(values))
        for name, (kind, unit, minimum, maximum, values) in entries.items()
    }
