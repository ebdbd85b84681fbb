"""What the Kopf indexes of kuberds.triggers keep, and how handlers read them. Pure.

The indexes keep only what the handlers read, not whole objects: with hundreds of servers,
full pod and claim bodies would be most of the operator's memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from kuberds.builders.meta import owner_of


def slim(body: Mapping, spec_keys: tuple[str, ...], status_keys: tuple[str, ...],
          annotations: tuple[str, ...] = ()) -> dict:  # fmt: skip
    meta = body.get("metadata", {})
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in annotations}
    return {
        "metadata": {
            **{k: meta[k] for k in ("name", "uid", "labels", "deletionTimestamp") if k in meta},
            **({"annotations": kept} if kept else {}),
        },
        "spec": {k: v for k, v in (body.get("spec") or {}).items() if k in spec_keys},
        "status": {k: v for k, v in (body.get("status") or {}).items() if k in status_keys},
    }


def by_owner(namespace: str, labels: dict, value: dict) -> dict | None:
    owner = owner_of(labels)
    return {(namespace, *owner): value} if owner else None


def by_name(namespace: str, name: str, body: Mapping, **_: object) -> dict:
    """A kind's own object, without what no handler reads: what drift correction rebuilds
    children from and status refreshes start from."""
    meta = {k: v for k, v in body["metadata"].items() if k not in ("managedFields", "annotations")}
    kept = {k: body[k] for k in ("apiVersion", "kind", "spec", "status") if k in body}
    return {(namespace, name): {**kept, "metadata": meta}}


def zones(node_zones: Mapping) -> dict[str, str]:
    return {name: next(iter(zones), "") for name, zones in node_zones.items()}


def one(index: Mapping, key: tuple) -> dict | None:
    return next(iter(index.get(key, [])), None)
