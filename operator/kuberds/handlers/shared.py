"""What every server kind's handler does the same way, given how the kind knows its server
now (`Known`: None when kuberds leaves it alone: paused, unsupported engine, deleting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import kopf

from kuberds.api.requests import SWITCHOVER_ANNOTATION
from kuberds.api.schema import parse
from kuberds.builders.rollout import requested_handover
from kuberds.builders.server import Server
from kuberds.builders.status import member_from_pod
from kuberds.config import OperatorConfig
from kuberds.contract import PRIMARY
from kuberds.engines import engine_for
from kuberds.kube import Kube
from kuberds.operations import drift, rollout, server_pass, storage_autoscaler
from kuberds.operations.status import post_event

T = TypeVar("T")
Known = Callable[[OperatorConfig, dict, dict | None], Server | None]


def spec_of(model: type[T], body: dict) -> T:
    try:
        return parse(model, body.get("spec"))
    except (ValueError, TypeError) as error:  # the schema normally refuses this first
        raise kopf.PermanentError(f"invalid spec: {error}") from error


def known_server(builders: server_pass.ServerKind, spec_of: Callable[[dict], object]) -> Known:
    """How a kind whose spec alone makes its server knows it: None while paused, with an engine
    kuberds cannot run yet, or deleting."""

    def known(config: OperatorConfig, body: dict, stateful_set: dict | None) -> Server | None:
        spec = spec_of(body)
        if spec.automation_paused or engine_for(spec.engine) is None or body["metadata"].get("deletionTimestamp"):
            return None
        return server_pass.known_server(builders, body, spec, config, stateful_set)

    return known


def refresh(kind: str, known: Known, kube: Kube, config: OperatorConfig, namespace: str, name: str,
            read: rollout.Read) -> str:  # fmt: skip
    """Members or the leader lease changed: endpoints, status, and one rolling step."""
    return rollout.refresh(kube, (kind, namespace, name), read, lambda body, sts: known(config, body, sts))


def check_storage(kind: str, known: Known, kube: Kube, config: OperatorConfig, body: dict, stateful_set: dict | None,
                  pods: list[dict], claims: list[dict], zones: dict[str, str]) -> str:  # fmt: skip
    """The volumes' free space: storage autoscaling's look."""
    server = known(config, body, stateful_set)
    if server is None:
        return "nothing: paused, unsupported, deleting, or not known yet"
    key = (kind, body["metadata"]["namespace"], body["metadata"]["name"])
    return storage_autoscaler.check(kube, config, key, body, server, stateful_set, pods, claims, zones)


def correct_drift(known: Known, objects: Callable[[Server], list[dict]], kube: Kube, config: OperatorConfig,
                  body: dict, event: dict, kind: str, name: str) -> str:  # fmt: skip
    """A Service or NetworkPolicy of the server changed or vanished: put it back."""
    server = known(config, body, None)
    return drift.correct_child(kube, body, event, kind, name, objects(server) if server else None)


def requested_switchover(kind: str, known: Known, kube: Kube, config: OperatorConfig, body: dict, pods: list[dict],
                         proxy_pods: list[dict], zones: dict[str, str]) -> str:  # fmt: skip
    """Carries out a person's switchover request (kuberds.api.requests) once, says how it went
    in an Event, and removes the request. Called for every event that shows the request: one
    older than the removal (queued meanwhile) is recognised and left alone."""
    meta = body["metadata"]
    requested = (meta.get("annotations") or {}).get(SWITCHOVER_ANNOTATION)
    key = (kind, meta["namespace"], meta["name"])
    if requested is None or _version(meta) <= _answered.get(key, -1):
        return "no switchover requested, or answered already"
    server = known(config, body, None)
    if server is None:
        outcome, reason = "refused: automation is paused, the server is being deleted, or it is not known yet", (
            "SwitchoverRefused")  # fmt: skip
    else:
        members = [member_from_pod(p, zones, server.engine.role_label_values) for p in pods]
        step = requested_handover(members, requested, server.synchronous)
        outcome, reason = step.reason, "SwitchoverRefused" if step.action == "refuse" else "SwitchoverNotNeeded"
        if step.action == "switchover":
            primary = next(m for m in members if m.role == PRIMARY)
            outcome = rollout.switch_over(kube, body, server, pods, primary, step.standby, proxy_pods, zones)
            if outcome.startswith("waiting"):
                return outcome  # the next event of the object asks again
            reason = ""  # switch_over said it (Switchover or SwitchoverFailed)
    if reason:
        post_event(body, "Warning" if reason == "SwitchoverRefused" else "Normal", reason,
                   message=f"switchover to {requested}: {outcome}")  # fmt: skip
    done = kube.merge_patch(kind, meta["namespace"], meta["name"], {"metadata": {"annotations": {
        SWITCHOVER_ANNOTATION: None}}})  # fmt: skip
    _answered[key] = _version((done or {}).get("metadata") or {})
    return outcome


# The resourceVersion of each object's last answered request (the removal): events older
# than it still show the request and must not carry it out twice.
_answered: dict[tuple[str, str, str], int] = {}


def _version(meta: dict) -> int:
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:  # opaque in principle; etcd's revisions in practice
        return 0
