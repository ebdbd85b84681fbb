"""The API reference (docs/api-reference.md), rendered from the same models as the CRDs."""

from __future__ import annotations

from typing import Any

from kuberds import API_GROUP, API_VERSION, engines
from kuberds.api.kinds import Kind
from kuberds.api.schema import openapi_schema
from kuberds.api.v1alpha1 import KINDS


def _type_of(schema: dict) -> str:
    kind = schema.get("type", "object")
    if kind == "array":
        return f"[]{_type_of(schema['items'])}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{_type_of(schema['additionalProperties'])}"
    return kind


def _constraints(schema: dict) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '...')} to {schema.get('maximum', '...')}")
    if "pattern" in schema:
        parts.append(f"pattern `{schema['pattern']}`")
    if "format" in schema:
        parts.append(schema["format"])
    for rule in schema.get("x-kubernetes-validations", []):
        parts.append(rule["message"])
    return "; ".join(parts).replace("|", "\\|")


def _rows(schema: dict, prefix: str) -> list[str]:
    rows = []
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        default: Any = prop.get("default")
        default_text = "" if default is None or default == {} else f"`{default}`"
        if "default" in prop and prop["default"] is False:
            default_text = "`false`"
        required = name in schema.get("required", [])
        description = prop.get("description", "").replace("|", "\\|")
        rows.append(
            f"| `{path}` | {_type_of(prop)}{' (required)' if required else ''} | {default_text} "
            f"| {description} | {_constraints(prop)} |"
        )
        nested = prop.get("items", prop) if prop.get("type") == "array" else prop
        if nested.get("type") == "object" and "properties" in nested:
            rows.extend(_rows(nested, path + ("[]" if prop.get("type") == "array" else "")))
    return rows


def _section(kind: Kind) -> str:
    spec, status = openapi_schema(kind.spec), openapi_schema(kind.status)
    header = "| field | type | default | description | validation |\n|---|---|---|---|---|"
    spec_rules = "".join(f"\n- {r['message']}" for r in spec.get("x-kubernetes-validations", []))
    return "\n".join(
        [
            f"## {kind.kind}",
            "",
            kind.spec.__kuberds_description__,
            "",
            f"`kubectl get {kind.plural}` (short names: {', '.join(kind.short_names)}; category `kuberds`).",
            "",
            "### spec",
            "",
            header,
            *_rows(spec, "spec"),
            "",
            *(["Rules across fields:" + spec_rules, ""] if spec_rules else []),
            "### status",
            "",
            header,
            *_rows(status, "status"),
            "",
        ]
    )


def render() -> str:
    intro = (
        f"# API reference: `{API_GROUP}/{API_VERSION}`\n\n"
        "Generated from `operator/kuberds/api/v1alpha1.py` by `make generate`; do not edit by hand.\n"
        "Every rule below is enforced by the CRD schema itself, so `kubectl apply` refuses bad input "
        "with the message shown.\n"
    )
    return intro + "\n" + "\n".join(_section(k) for k in KINDS) + "\n" + _parameters()


def _parameters() -> str:
    """The parameters users may set, per engine with an allow-list: name, type, range or values."""
    out = []
    for engine in [*engines.ENGINES.values(), *engines.CACHE_ENGINES.values()]:
        allowed = engine.allowed_parameters()
        if not allowed:
            continue
        out += [f"## {engine.name} parameters (`spec.parameters`)", "",
                f"The {len(allowed)} parameters a `{engine.name}` server takes, as an RDS parameter group's "
                "modifiable ones; names are read without regard to case. Memory and time values may carry the "
                "engine's units (`16MB`, `30s`); ranges are in the unit shown.", "",
                "| parameter | type | unit | range or values |", "|---|---|---|---|"]  # fmt: skip
        for p in allowed:
            limits = ", ".join(f"`{v}`" for v in p.values) if p.values else (
                f"{p.minimum} to {p.maximum}" if p.minimum is not None else "")  # fmt: skip
            out.append(f"| `{p.name}` | {p.type} | {p.unit or ''} | {limits} |")
        out.append("")
    return "\n".join(out)
