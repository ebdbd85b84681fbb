"""Kubernetes resource quantities as numbers (for comparisons and engine sizing)."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(text: str | int) -> Decimal:
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


def to_bytes(text: str | int) -> int:
    return int(parse_quantity(text))


def binary_quantity(size: int) -> str:
    """Bytes as the shortest exact binary quantity: 2147483648 → "2Gi", 1536 MiB → "1536Mi";
    sizes below a MiB round up to one (volumes are never asked for less)."""
    mib = -(-size // 2**20)
    for suffix, scale in (("Ti", 2**20), ("Gi", 2**10)):
        if mib % scale == 0:
            return f"{mib // scale}{suffix}"
    return f"{mib}Mi"
