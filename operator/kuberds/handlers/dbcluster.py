"""DBCluster: a PostgreSQL writer and up to 15 readers behind writer, reader and custom
endpoints that follow the leader lease (Aurora).

A DBCluster is a server of 1 + readers members built by the same pass as a DBInstance; what
differs is its shape (builders.dbcluster: strict synchronous commit from three members,
promotion tiers) and the endpoints over its members (builders.routing). Thin: each function is
one trigger's work in kuberds.triggers, over the shared operations.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.builders import dbcluster as build
from kuberds.builders.meta import Owner
from kuberds.builders.server import Server
from kuberds.builders.status import FALSE, TRUE, Condition, member_from_pod
from kuberds.builders.tiers import before_scale_in
from kuberds.config import OperatorConfig
from kuberds.contract import PRIMARY
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import final_snapshot, ownership, reader_autoscaling, rollout, server_pass
from kuberds.operations.status import post_event

KIND = "DBCluster"


class Builders:
    """The DBCluster's side of the shared server pass (operations.server_pass.ServerKind);
    `members`: how many to keep for now while scaling in waits for the writer to move."""

    def __init__(self, members: int | None = None):
        self.members = members

    def server(self, owner, spec, engine, config, **kwargs) -> Server:
        return build.cluster_server(owner, spec, engine, config, members=self.members, **kwargs)

    objects = staticmethod(build.server_objects)


BUILDERS = Builders()


def spec_of(body: dict) -> api.DBClusterSpec:
    """The spec; a clone (cloneFrom) is a restore of the source cluster at its latest
    restorable time (Aurora clones share pages; here the clone is a full copy)."""
    spec = shared.spec_of(api.DBClusterSpec, body)
    if spec.clone_from and spec.restore is None:
        clone = api.Restore(point_in_time=api.PointInTime(source=spec.clone_from, latest=True))
        spec = dataclasses.replace(spec, restore=clone)
    return spec


def endpoints_condition(spec: api.DBClusterSpec) -> Condition:
    """EndpointsValid: custom endpoints name members that exist (the schema cannot know how
    many there are: spec.readers moves). An endpoint naming one that does not is still served,
    over the members it names that do."""
    problems = build.member_problems(spec)
    if problems:
        return Condition("EndpointsValid", FALSE, "UnknownMember", "; ".join(problems))
    return Condition("EndpointsValid", TRUE, "MembersExist", "every member the custom endpoints name exists")


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str],
              replicas_of: object = None) -> None:  # fmt: skip
    """Create or correct every object of the cluster, then publish status."""
    spec = spec_of(body)
    hold, waiting = _scale_in(kube, config, body, spec, pods, zones)
    server_pass.run(kube, config, Builders(hold), body, spec, pods, zones, [endpoints_condition(spec)])
    if waiting:
        raise kopf.TemporaryError(f"scaling in: {waiting}", delay=5)


def _scale_in(kube: Kube, config: OperatorConfig, body: dict, spec: api.DBClusterSpec, pods: list[dict],
              zones: dict[str, str]) -> tuple[int | None, str | None]:  # fmt: skip
    """Scaling in removes the highest ordinals; a writer among them hands over first. Returns
    how many members to keep meanwhile (None: as the spec says; else up to the writer's) and
    what is awaited."""
    wanted, current = 1 + spec.readers, len(pods)
    server = _known_server(config, body, None) if current > wanted else None
    if server is None:  # not scaling in; or paused, an engine not run yet, deleting
        return None, None
    members = [member_from_pod(p, zones, server.engine.role_label_values) for p in pods]
    writer = next((m for m in members if m.role == PRIMARY), None)
    step = before_scale_in(members, writer.name if writer else None, wanted, server.promotion_tiers or (),
                           server.synchronous)  # fmt: skip
    if step.action == "none":
        return None, None
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    if step.action == "switchover" and time.monotonic() - _handovers.get(key, -1e9) > rollout.SWITCHOVER_RETRY_SECONDS:
        _handovers[key] = time.monotonic()
        post_event(body, "Normal", "ScaleInSwitchover", message=step.reason)
        rollout.switch_over(kube, body, server, pods, writer, step.target, zones=zones)
    # Members above the writer go first: the synchronous standby is then among those that stay.
    return writer.ordinal + 1, step.reason


# When each cluster last asked for a switchover before scaling in: one request at a time.
_handovers: dict[tuple[str, str], float] = {}


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    final_snapshot.delete(kube, config, body, spec_of(body))
    ownership.forget(Owner.of(body))


# The server for status, endpoints and drift; None when kuberds leaves it alone now.
_known_server = shared.known_server(BUILDERS, spec_of)


def autoscale_readers(kube: Kube, body: dict, pods: list[dict]) -> str:
    """Reader autoscaling's periodic look (operations.reader_autoscaling)."""
    return reader_autoscaling.check(kube, body, pods)


refresh = functools.partial(shared.refresh, KIND, _known_server)
switchover = functools.partial(shared.requested_switchover, KIND, _known_server)
check_storage = functools.partial(shared.check_storage, KIND, _known_server)
correct_drift = functools.partial(shared.correct_drift, _known_server, build.server_objects)
