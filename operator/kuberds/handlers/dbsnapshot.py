"""DBSnapshot handlers. The backup itself is taken by the agent on the source's primary
(kuberds.agent), which writes the snapshot's phase Creating → Available and its
backupID; the operator checks the source, says what the snapshot waits for, and holds the
object's deletion until the agent has removed the backup."""

from __future__ import annotations

import kopf

from kuberds.builders.snapshot import SNAPSHOT_KIND_LABEL
from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import snapshots
from kuberds.kube import Kube
from kuberds.operations.status import publish_status

KIND = snapshots.KIND


def _source(body: dict) -> tuple[str, str | None]:
    source = (body.get("spec") or {}).get("source") or {}
    return next(((kind, source[key]) for kind, key in snapshots.SOURCE_FIELDS.items() if key in source),
                ("DBInstance", None))  # fmt: skip


def reconcile(kube: Kube, config: OperatorConfig, body: dict) -> None:
    meta = body["metadata"]
    kind, name = _source(body)
    current = body.get("status") or {}
    fields = {"kind": (meta.get("labels") or {}).get(SNAPSHOT_KIND_LABEL, "manual")}
    if current.get("phase") in snapshots.AGENT_PHASES:
        return
    if kube.get(kind, meta["namespace"], name) is None:
        publish_status(kube, body, [Condition("SourceFound", FALSE, "SourceNotFound",
                       f"{kind} {name} does not exist in this namespace")], fields, fixed_phase="Failed")  # fmt: skip
        raise kopf.TemporaryError(f"{kind} {name} not found", delay=30)
    conditions = [
        Condition("SourceFound", TRUE, "SourceExists", f"{kind} {name}"),
        Condition("Ready", FALSE, "WaitingForAgent", f"the agent on {name}'s primary takes the backup"),
    ]
    publish_status(kube, body, conditions, fields, fixed_phase="Pending")


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    """The backup goes before the object (deletionPolicy Delete): the agent removes it and
    marks the snapshot Deleted. Nothing to wait for when there is no backup, when the policy
    is Retain, or when the source server is gone (then the backup stays, and an Event says so)."""
    status, spec = body.get("status") or {}, body.get("spec") or {}
    label = status.get("backupID")
    if not label or status.get("phase") == snapshots.DELETED or spec.get("deletionPolicy") == "Retain":
        return
    kind, name = _source(body)
    if kube.get(kind, body["metadata"]["namespace"], name) is None:
        kopf.event(body, type="Warning", reason="BackupLeftInRepository",
                   message=f"backup {label} stays in the repository: {kind} {name}, whose agent removes "
                           "backups, no longer exists")  # fmt: skip
        return
    raise kopf.TemporaryError(f"waiting for the agent of {name} to remove backup {label}", delay=5)
