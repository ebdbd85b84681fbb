"""DBSnapshot handlers. The backup itself is taken by the in-pod agent (data-plane issue);
until that exists, a snapshot waits in phase Pending and says why."""

from __future__ import annotations

import kopf

from kuberds.builders.snapshot import SNAPSHOT_KIND_LABEL
from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.handlers.common import publish_status
from kuberds.kube import Kube


def reconcile(kube: Kube, body: dict) -> None:
    meta, spec = body["metadata"], body.get("spec") or {}
    source = spec.get("source") or {}
    kind, name = (
        ("DBInstance", source["dbInstance"]) if "dbInstance" in source else ("DBCluster", source.get("dbCluster"))
    )
    found = kube.get(kind, meta["namespace"], name) is not None
    current = body.get("status") or {}
    fields = {"kind": (meta.get("labels") or {}).get(SNAPSHOT_KIND_LABEL, "manual")}
    if current.get("phase") == "Available":
        return
    if not found and not current.get("snapshotTime"):
        publish_status(kube, body, [Condition("SourceFound", FALSE, "SourceNotFound",
                       f"{kind} {name} does not exist in this namespace")], fields, fixed_phase="Failed")  # fmt: skip
        raise kopf.TemporaryError(f"{kind} {name} not found", delay=30)
    conditions = [
        Condition("SourceFound", TRUE, "SourceExists", f"{kind} {name}"),
        Condition("Ready", FALSE, "DataPlaneNotAvailable",
                  "snapshots are taken by the in-pod agent, which is not implemented yet"),
    ]  # fmt: skip
    publish_status(kube, body, conditions, fields, fixed_phase="Pending")
