"""Typed API models → Kubernetes structural OpenAPI schemas, and back to typed values.

The kuberds API is written once, as dataclasses in kuberds.api.v1alpha1. Each field says,
through `field(...)`, its description and its validation (enum, pattern, range, CEL rules,
immutability); each model may carry CEL rules across its fields. From that one source:

- `openapi_schema(Model)` gives the schema a CRD serves (so `kubectl apply` refuses bad
  input with a message naming the field, and `kubectl explain` documents every field);
- `parse(Model, dict)` gives the operator a typed, defaulted value of a spec (kuberds.codec);
- kuberds.api.reference renders the API reference from the same walk.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, NewType, get_args, get_origin, get_type_hints

from kuberds.codec import camel, decode, encode, is_dataclass_type, unwrap_optional

# The API's names for the one mapper (kuberds.codec): lowerCamelCase, as Kubernetes spells them.
to_json = encode
parse = decode

# Strings with a meaning of their own: how the schema spells them.
Quantity = NewType("Quantity", str)  # "20Gi", "500m": a Kubernetes resource quantity
Timestamp = NewType("Timestamp", str)  # RFC 3339, e.g. "2026-11-27T10:15:00Z"

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DEFAULT_MAX_LENGTH = 253  # bounds CEL's cost estimate; a DNS name's length
DEFAULT_MAX_ITEMS = 64


@dataclass(frozen=True)
class Rule:
    """A CEL rule (x-kubernetes-validations). `field_path` names the field in the error."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None  # FieldValueInvalid (default), FieldValueForbidden, …
    # A CEL string expression for the message, naming the offending value; `message` stays
    # the fallback (the API server uses it when the expression fails).
    message_expression: str | None = None

    def as_schema(self) -> dict:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class FieldInfo:
    description: str
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    items_minimum: int | None = None  # bounds of each item of a list of integers
    items_maximum: int | None = None
    # Maps: how many entries, and what each value must look like (validated by the schema
    # itself, which names the entry's key in its error, at no CEL cost).
    max_properties: int | None = None
    value_pattern: str | None = None
    value_max_length: int | None = None
    format: str | None = None
    rules: tuple[Rule, ...] = ()
    immutable: str | None = None  # the refusal message, when the field may not change
    # With `immutable` on an optional field: it may be neither added nor taken away later.
    set_at_creation: bool = False
    list_map_keys: tuple[str, ...] | None = None  # list of objects keyed by these fields
    preserve_unknown: bool = False
    example: str | None = None


def field(
    description: str,
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    rules: typing.Sequence[Rule] = (),
    **info: Any,
) -> Any:
    """A model field: a dataclass field whose metadata carries its schema."""
    meta = {"kuberds": FieldInfo(description=description, rules=tuple(rules), **info)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def model(*rules: Rule, description: str = "") -> typing.Callable[[type], type]:
    """Marks a dataclass as an API object; `rules` are CEL rules across its fields."""

    def wrap(cls: type) -> type:
        # An optional field (annotated `X | None`) without a default defaults to None.
        for name, annotation in inspect.get_annotations(cls).items():
            current = cls.__dict__.get(name)
            optional = str(annotation).replace(" ", "").endswith("|None")
            if optional and isinstance(current, dataclasses.Field) and current.default_factory is MISSING:
                current.default = None if current.default is MISSING else current.default
        cls = dataclass(cls, kw_only=True)
        cls.__kuberds_rules__ = tuple(rules)
        cls.__kuberds_description__ = description or (cls.__doc__ or "").strip()
        return cls

    return wrap


# ---------------------------------------------------------------- type inspection


def model_fields(cls: type) -> list[tuple[str, Any, FieldInfo, Any, bool]]:
    """(json name, type, info, default, optional) of each field, in declaration order."""
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get("kuberds")
        if info is None:
            raise TypeError(f"{cls.__name__}.{f.name} has no description (use schema.field)")
        tp, optional = unwrap_optional(hints[f.name])
        default = f.default if f.default is not MISSING else MISSING
        if f.default_factory is not MISSING:
            default = f.default_factory()
        out.append((camel(f.name), tp, info, default, optional))
    return out


# ---------------------------------------------------------------- schema


def type_schema(tp: Any) -> dict:
    """The schema of a type alone (no field-level description or rules)."""
    if tp is Quantity:
        return {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": 32}
    if tp is Timestamp:
        return {"type": "string", "format": "date-time"}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if get_origin(tp) is Literal:
        values = get_args(tp)
        kind = "integer" if all(isinstance(v, int) for v in values) else "string"
        return {"type": kind, "enum": list(values)}
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        return {"type": "array", "items": type_schema(item)}
    if get_origin(tp) is dict:
        key, value = get_args(tp)
        if key is not str:
            raise TypeError(f"map keys must be str, not {key}")
        return {"type": "object", "additionalProperties": type_schema(value)}
    if is_dataclass_type(tp):
        return openapi_schema(tp)
    raise TypeError(f"no schema for type {tp!r}")


def _field_schema(tp: Any, info: FieldInfo, default: Any) -> dict:
    schema = type_schema(tp)
    schema["description"] = info.description
    for key, value in (
        ("enum", list(info.enum) if info.enum else None),
        ("pattern", info.pattern),
        ("minimum", info.minimum),
        ("maximum", info.maximum),
        ("minLength", info.min_length),
        ("maxLength", info.max_length),
        ("maxItems", info.max_items),
        ("format", info.format),
    ):
        if value is not None:
            schema[key] = value
    # Bounded sizes keep CEL's cost estimate under the API server's budget.
    if schema["type"] == "string" and "enum" not in schema and "format" not in schema:
        schema.setdefault("maxLength", DEFAULT_MAX_LENGTH)
    if schema["type"] == "array":
        schema.setdefault("maxItems", DEFAULT_MAX_ITEMS)
        if schema["items"].get("type") == "string":
            schema["items"].setdefault("maxLength", DEFAULT_MAX_LENGTH)
        for key, value in (("minimum", info.items_minimum), ("maximum", info.items_maximum)):
            if value is not None:
                schema["items"][key] = value
    if schema["type"] == "object" and "additionalProperties" in schema:
        schema["maxProperties"] = info.max_properties or DEFAULT_MAX_ITEMS * 4
        values = schema["additionalProperties"]
        if info.value_pattern:
            values["pattern"] = info.value_pattern
        if values.get("type") == "string":
            values["maxLength"] = info.value_max_length or 4096
    if info.list_map_keys:
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(info.list_map_keys)
    if info.preserve_unknown:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    rules = [r.as_schema() for r in info.rules]
    if info.immutable:
        rules.append({"rule": "self == oldSelf", "message": info.immutable})
    if rules:
        schema.setdefault("x-kubernetes-validations", []).extend(rules)
    if default is not MISSING and default is not None:
        # A whole-object default is written out in full: the API server checks a default
        # against the object's rules before nested defaults would fill it in.
        schema["default"] = to_json(default)
    return schema


def openapi_schema(cls: type) -> dict:
    """The structural schema of a model, as a CRD's openAPIV3Schema wants it."""
    properties: dict[str, dict] = {}
    required: list[str] = []
    for name, tp, info, default, optional in model_fields(cls):
        properties[name] = _field_schema(tp, info, default)
        if default is MISSING and not optional:
            required.append(name)
    schema: dict[str, Any] = {"type": "object"}
    if cls.__kuberds_description__:
        schema["description"] = cls.__kuberds_description__
    schema["properties"] = properties
    if required:
        schema["required"] = required
    rules = [*cls.__kuberds_rules__, *_kept_once_set(cls)]
    if rules:
        schema["x-kubernetes-validations"] = [r.as_schema() for r in rules]
    return schema


def _kept_once_set(cls: type) -> list[Rule]:
    """An immutable field that may be left out must not be taken away either: the field's own
    rule (self == oldSelf) is not evaluated when the new object lacks it."""
    rules = []
    for name, _, info, _, optional in model_fields(cls):
        if not (info.immutable and optional):
            continue
        if info.set_at_creation:
            rules.append(Rule(f"has(self.{name}) == has(oldSelf.{name})", info.immutable, field_path=f".{name}"))
        else:
            rules.append(Rule(f"!has(oldSelf.{name}) || has(self.{name})",
                              f"{info.immutable}; it cannot be removed either", field_path=f".{name}"))  # fmt: skip
    return rules
