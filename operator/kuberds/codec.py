"""The one mapper between dataclasses and JSON data, for both sides of kuberds.

The API models (kuberds.api) are read from and written to Kubernetes objects with
lowerCamelCase names; the operator↔agent contract (kuberds.contract) uses the same walk,
with the names its files have always had. Decoding ignores keys the dataclass does not
know (a newer operator may add fields an older agent has not heard of), fills defaults for
missing ones, and refuses a missing required field.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, Union, get_args, get_origin, get_type_hints

Naming = Callable[[str], str]  # a Python field name → its name in JSON

ACRONYMS = {"az": "AZ", "tls": "TLS", "cpu": "CPU", "id": "ID", "ip": "IP", "url": "URL"}


def camel(python_name: str) -> str:
    """snake_case → lowerCamelCase, acronyms in capitals as Kubernetes spells them (multiAZ)."""
    head, *rest = python_name.rstrip("_").split("_")
    return head + "".join(ACRONYMS.get(part, part[:1].upper() + part[1:]) for part in rest)


def same(python_name: str) -> str:
    return python_name


def is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for `T | None`, else (tp, False)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def encode(value: Any, names: Naming = camel, *, omit_none: bool = True) -> Any:
    """A dataclass value (nested ones, lists and maps of them) as plain JSON data."""
    if is_dataclass_type(type(value)):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is not None or not omit_none:
                out[names(f.name)] = encode(item, names, omit_none=omit_none)
        return out
    if isinstance(value, list | tuple):
        return [encode(v, names, omit_none=omit_none) for v in value]
    if isinstance(value, dict):
        return {k: encode(v, names, omit_none=omit_none) for k, v in value.items()}
    return value


def decode(cls: type, data: Mapping[str, Any] | None, names: Naming = camel) -> Any:
    """A typed value of dataclass `cls` from JSON data (see the module's rules)."""
    data = data or {}
    kwargs = {}
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = names(f.name)
        tp, _ = unwrap_optional(hints[f.name])
        if name in data and data[name] is not None:
            kwargs[f.name] = _decode_value(tp, data[name], names)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{cls.__name__}: required field {name!r} is missing")
    return cls(**kwargs)


def _decode_value(tp: Any, value: Any, names: Naming) -> Any:
    if is_dataclass_type(tp):
        return decode(tp, value, names)
    origin = get_origin(tp)
    if origin is list:
        (item,) = get_args(tp)
        return [_decode_value(item, v, names) for v in value]
    if origin is tuple:
        item = get_args(tp)[0]
        return tuple(_decode_value(item, v, names) for v in value)
    if origin is dict:
        _, item = get_args(tp)
        return {k: _decode_value(item, v, names) for k, v in value.items()}
    return value
