"""Status publishing with Events, for every kind; and the time stamps status carries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

import kopf

from kuberds import metrics
from kuberds.builders.status import FALSE, TRUE, Condition, Observed, merge_conditions, phase, transitions
from kuberds.kube import Kube, terminating

log = logging.getLogger("kuberds")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def publish_status(kube: Kube, body: dict, *args: Any, **kwargs: Any) -> dict:
    """Writes status (see _publish); on a conflict (someone wrote since `body` was read)
    re-reads the object and merges again, instead of failing the whole handler."""
    for attempt in range(4):
        try:
            return _publish(kube, body, *args, **kwargs)
        except kopf.TemporaryError:
            meta = body["metadata"]
            fresh = kube.get(body["kind"], meta["namespace"], meta["name"]) if attempt < 3 else None
            if fresh is None:
                raise
            body = fresh
    return body.get("status") or {}


def _publish(
    kube: Kube,
    body: dict,
    conditions: list[Condition],
    fields: dict[str, Any] | Callable[[dict], dict[str, Any]] | None = None,
    observed: Observed | None = None,
    *,
    fixed_phase: str | None = None,
) -> dict:
    """Merges conditions, derives the phase, posts an Event per condition transition, and
    patches the status subresource only when something changed. Returns the new status."""
    meta = body["metadata"]
    current = body.get("status") or {}
    if callable(fields):  # fields that build on the status as it is now (a retry has a fresher one)
        fields = fields(current)
    generation = meta.get("generation", 0)
    merged = merge_conditions(current.get("conditions", []), conditions, generation, now())
    # The previous phase is the object's own (it may be fresher than the caller's view).
    observed = dataclasses.replace(observed or Observed(desired=0), previous_phase=current.get("phase"))
    status = {
        **current,
        **(fields or {}),
        "conditions": merged,
        "observedGeneration": generation,
    }
    status["phase"] = fixed_phase or phase(
        # Derived from the object itself, so a retry after a conflict judges the fresh spec.
        observed,
        merged,
        paused=bool((body.get("spec") or {}).get("automationPaused")),
        deleting=bool(meta.get("deletionTimestamp")),
    )
    if _comparable(status) == _comparable(current):
        return current
    previous = {c["type"]: c["status"] for c in current.get("conditions", [])}
    for changed in transitions(current.get("conditions", []), merged, PROBLEM_REASONS):
        kind = event_type(changed["type"], changed["status"], previous.get(changed["type"]), changed["reason"])
        if kind is None:
            continue
        text = f"{changed['type']} is {changed['status']}: {changed['message']}".rstrip(": ")
        post_event(body, kind, changed["reason"] or changed["type"], text)
    # resourceVersion makes the write conditional: a status computed from an older
    # object (another handler wrote meanwhile) is refused with 409 instead of losing fields.
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
    kube.merge_patch(body["kind"], meta["namespace"], meta["name"], patch, subresource="status")
    return status


# False here is a problem to report even on first sight; other conditions start False
# while a server is created, and only losing True is worth a Warning.
PROBLEM_CONDITIONS = {"Reconciled", "FinalSnapshot", "StorageResized", "SourceFound"}
# Reasons that are a problem whatever their condition's status was (ProxyReady starts False).
PROBLEM_REASONS = frozenset({"InvalidProxy"})


# Conditions whose True is the problem: a full volume, a low one nothing will grow.
PROBLEM_WHEN_TRUE = frozenset({"StorageFull", "StorageLow", "SourceUnavailable"})


def event_type(condition: str, status: str, before: str | None, reason: str | None = None) -> str | None:
    """Warning, Normal, or None for no Event: a condition's first appearance is news only
    when it reports a problem (every new server starts not Ready, not Paused, …)."""
    if condition in PROBLEM_WHEN_TRUE:
        return "Warning" if status == TRUE else ("Normal" if before == TRUE else None)
    if reason in ("Resizing", "Disabled"):  # a resize on its way; autoscaling turned off
        return "Normal"
    if status == FALSE and (condition in PROBLEM_CONDITIONS or before == "True" or reason in PROBLEM_REASONS):
        return "Warning"
    if before is None and status != TRUE:
        return None
    if before is None and condition == "Paused":
        return None
    return "Normal"


def _comparable(status: dict) -> dict:
    """Status without transition times (a re-derived condition is not a change)."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])
    ]
    return out


def reported(kind: str, kube: Callable[[], Kube]) -> Callable:
    """Counts and times a handler (kuberds.metrics), and makes a failure that no condition
    explains yet visible on the object: a TemporaryError is a wait the handler already said
    (or a conflict retried at once); anything else becomes an Event and a condition."""

    def wrap(handler: Callable) -> Callable:
        counted = metrics.instrumented(kind)(handler)

        @functools.wraps(handler)
        def run(*args: object, **kwargs: object) -> object:
            try:
                return counted(*args, **kwargs)
            except kopf.TemporaryError:
                raise
            except Exception as error:
                body = kwargs.get("body")
                if body is not None:
                    report_failure(kube(), dict(body), error)
                raise

        return run

    return wrap


def report_failure(kube: Kube, body: dict, error: Exception) -> None:
    """A handler failed in a way no condition says yet (a refusal by the API server, a bug):
    a Warning Event and Reconciled=False on the object, so it is seen where users look, not
    only in the operator's log. Best effort: the report must not hide the failure."""
    message = f"{type(error).__name__}: {error}"[:1000]
    post_event(body, "Warning", "ReconcileFailed", message)
    try:
        publish_status(kube, body, [Condition("Reconciled", FALSE, "ReconcileFailed", message)])
    except Exception as publishing:
        log.warning("could not publish the failure of %s: %s", body.get("metadata", {}).get("name"), publishing)


def post_event(body: dict, kind: str, reason: str, message: str) -> None:
    """A Kubernetes Event on the object (Normal or Warning), unless its namespace is being
    deleted: Events are new objects too, and every attempt would be refused."""
    if not terminating((body.get("metadata") or {}).get("namespace", "")):
        kopf.event(body, type=kind, reason=reason, message=message)
