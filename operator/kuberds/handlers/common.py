"""What every kind's handlers share: status publishing with Events, and time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from kuberds.builders.status import FALSE, Condition, Observed, merge_conditions, phase, transitions
from kuberds.kube import Kube


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def publish_status(
    kube: Kube,
    body: dict,
    conditions: list[Condition],
    fields: dict[str, Any] | None = None,
    observed: Observed | None = None,
    *,
    paused: bool = False,
    fixed_phase: str | None = None,
) -> dict:
    """Merges conditions, derives the phase, posts an Event per condition transition, and
    patches the status subresource only when something changed. Returns the new status."""
    meta = body["metadata"]
    current = body.get("status") or {}
    generation = meta.get("generation", 0)
    merged = merge_conditions(current.get("conditions", []), conditions, generation, now())
    observed = observed or Observed(desired=0, previous_phase=current.get("phase"))
    status = {
        **current,
        **(fields or {}),
        "conditions": merged,
        "observedGeneration": generation,
    }
    status["phase"] = fixed_phase or phase(
        observed, merged, paused=paused, deleting=bool(meta.get("deletionTimestamp"))
    )
    if _comparable(status) == _comparable(current):
        return current
    for changed in transitions(current.get("conditions", []), merged):
        kind = "Warning" if changed["status"] == FALSE and changed["type"] not in ("Paused",) else "Normal"
        text = f"{changed['type']} is {changed['status']}: {changed['message']}".rstrip(": ")
        kopf.event(body, type=kind, reason=changed["reason"] or changed["type"], message=text)
    kube.merge_patch(body["kind"], meta["namespace"], meta["name"], {"status": status}, subresource="status")
    return status


def _comparable(status: dict) -> dict:
    """Status without transition times (a re-derived condition is not a change)."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])
    ]
    return out
