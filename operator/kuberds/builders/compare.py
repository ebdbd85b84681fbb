"""Is what the API server holds still what we built? Pure."""

from __future__ import annotations

from typing import Any


def is_subset(desired: Any, actual: Any) -> bool:
    """True when every field of `desired` has the same value in `actual`. Fields the server
    or other controllers add (defaults, status, annotations) do not count as drift."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
        )
    return desired == actual


# Maps that must hold exactly our keys: a key someone adds to a selector changes which
# pods get traffic, and server-side apply would keep it (it belongs to its own manager).
EXACT_MAPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Service": (("spec", "selector"),),
    "NetworkPolicy": (("spec", "podSelector", "matchLabels"),),
    "PodDisruptionBudget": (("spec", "selector", "matchLabels"),),
    "ConfigMap": (("data",),),
}


def foreign_keys_patch(desired: dict, actual: dict) -> dict:
    """A JSON merge patch that deletes keys others added to the maps in EXACT_MAPS."""
    patch: dict = {}
    for path in EXACT_MAPS.get(desired.get("kind", ""), ()):
        # A map we leave out (a routed Service's selector) must stay empty.
        ours, theirs = _at(desired, path) or {}, _at(actual, path)
        extra = sorted(set(theirs) - set(ours)) if isinstance(ours, dict) and isinstance(theirs, dict) else []
        if extra:
            node = patch
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = dict.fromkeys(extra)
    return patch


def _at(obj: dict, path: tuple[str, ...]) -> object:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def merge_patch_restoring(desired: dict, foreign: dict) -> dict:
    """A JSON merge patch that puts back every field we build, lists included."""
    patch = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata")}
    patch["metadata"] = {"labels": desired["metadata"].get("labels", {})}
    return _deep_merge(patch, foreign)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out.get(key, {}), value) if isinstance(value, dict) and key in out else value
    return out
