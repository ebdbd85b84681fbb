"""Reader autoscaling's look at a DBCluster: the ready readers' reports in, the decision
(builders.reader_autoscaling) applied to spec.readers, as the scale subresource would (so an
HPA or KEDA may drive spec.readers instead: then leave readerAutoscaling out)."""

from __future__ import annotations

from datetime import UTC, datetime

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders.reader_autoscaling import decide, metric
from kuberds.builders.status import TRUE, Condition, member_from_pod
from kuberds.contract import REPLICA, ROLE_LABEL
from kuberds.contract.report import AgentReport
from kuberds.engines import engine_for
from kuberds.kube import Kube
from kuberds.operations.status import parse_time, post_event, publish_status


def check(kube: Kube, body: dict, pods: list[dict], now: datetime | None = None) -> str:
    spec = parse(api.DBClusterSpec, body.get("spec"))
    policy, engine = spec.reader_autoscaling, engine_for(spec.engine)
    if policy is None or spec.automation_paused or engine is None or body["metadata"].get("deletionTimestamp"):
        return "nothing: no readerAutoscaling, paused or deleting"
    name, _ = metric(policy)
    replica = engine.role_label_values[REPLICA]
    readers = [p for p in pods if ((p["metadata"].get("labels") or {}).get(ROLE_LABEL) == replica
                                   and member_from_pod(p, {}, engine.role_label_values).in_service)]  # fmt: skip
    loads = [value for p in readers if (value := AgentReport.from_pod(p).to_data().get(name)) is not None]
    status, now = body.get("status") or {}, now or datetime.now(UTC)
    last = parse_time(status["lastScaleTime"]) if status.get("lastScaleTime") else None
    decision = decide(policy, spec.readers, loads, last, status.get("lastScaleDirection"), now)
    if decision.readers == spec.readers:
        steady = Condition("ReaderAutoscaling", TRUE, "Tracking", f"{spec.readers} readers, tracking {name}")
        publish_status(kube, body, [steady])
        return decision.reason
    meta = body["metadata"]
    kube.merge_patch("DBCluster", meta["namespace"], meta["name"], {"spec": {"readers": decision.readers}})
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    scaled = Condition("ReaderAutoscaling", TRUE, "ScaledOut" if decision.direction == "out" else "ScaledIn",
                       decision.reason)  # fmt: skip
    publish_status(kube, body, [scaled], {"lastScaleTime": stamp, "lastScaleDirection": decision.direction})
    post_event(body, "Normal", "ReaderAutoscaling", message=decision.reason)
    return decision.reason
