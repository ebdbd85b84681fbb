"""DBSnapshot handlers. The backup itself is taken by the agent on the source's primary
(kuberds.agent), which writes the snapshot's phase Creating → Available and its
backupID; the operator checks the source, says what the snapshot waits for, and holds the
object's deletion until the agent has removed the backup."""

from __future__ import annotations

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse, to_json
from kuberds.api.v1alpha1 import cachecluster as cache
from kuberds.builders import cache as cache_build
from kuberds.builders.meta import Owner
from kuberds.builders.rbac import snapshot_grant
from kuberds.builders.snapshot import SNAPSHOT_KIND_LABEL, snapshot_repository
from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import snapshots
from kuberds.kube import Kube
from kuberds.operations.status import post_event, publish_status

KIND = snapshots.KIND


def source_of(body: dict) -> tuple[str, str | None]:
    """(kind, name) of the server a snapshot is taken of."""
    source = (body.get("spec") or {}).get("source") or {}
    return next(((kind, source[key]) for kind, key in snapshots.SOURCE_FIELDS.items() if key in source),
                ("DBInstance", None))  # fmt: skip


def _repository(source: dict, config: OperatorConfig) -> dict | None:
    if source["kind"] == cache.KIND.kind:  # an RDB snapshot goes where the cluster's snapshots go
        found = cache_build.snapshot_repository(source, config)
        return to_json(found) if found else None
    return snapshot_repository(source, parse(api.DBInstanceSpec, source.get("spec")), config)


def grant_agent(kube: Kube, source: dict, snapshots_of_source: list[str]) -> None:
    """The source's agent may write the status of the source's snapshots, by name."""
    owner = Owner.of(source)
    for obj in snapshot_grant(owner, snapshots_of_source):
        kube.apply(obj)


def reconcile(kube: Kube, config: OperatorConfig, body: dict, snapshots_of_source: list[str]) -> None:
    """`snapshots_of_source`: the names of every DBSnapshot of the same source, this one too."""
    meta = body["metadata"]
    kind, name = source_of(body)
    current = body.get("status") or {}
    fields = {"kind": (meta.get("labels") or {}).get(SNAPSHOT_KIND_LABEL, "manual")}
    taken = current.get("phase") in snapshots.AGENT_PHASES
    if taken and current.get("repository"):
        return
    source = kube.get(kind, meta["namespace"], name)
    if source:  # before the agent can say anything of this snapshot
        grant_agent(kube, source, [*snapshots_of_source, meta["name"]])
    repository = _repository(source, config) if source else None
    if repository:
        fields["repository"] = repository
    if taken:  # taken before its repository was recorded: record it now, the agent's phase stays
        if repository:
            publish_status(kube, body, [], fields, fixed_phase=current["phase"])
        return
    if source is None:
        publish_status(kube, body, [Condition("SourceFound", FALSE, "SourceNotFound",
                       f"{kind} {name} does not exist in this namespace")], fields, fixed_phase="Failed")  # fmt: skip
        raise kopf.TemporaryError(f"{kind} {name} not found", delay=30)
    conditions = [
        Condition("SourceFound", TRUE, "SourceExists", f"{kind} {name}"),
        Condition("Ready", FALSE, "WaitingForAgent", f"the agent on {name}'s primary takes the backup"),
    ]
    publish_status(kube, body, conditions, fields, fixed_phase="Pending")


def restoring_from(kube: Kube, namespace: str, snapshot: str) -> list[str]:
    """Servers of this namespace that are being restored from the snapshot (not yet once
    serving): its backup must stay until they are."""
    restoring = []
    listed = ((kind, server) for kind in ("DBInstance", "DBCluster", cache.KIND.kind)
              for server in kube.list(kind, namespace))  # fmt: skip
    for kind, server in listed:
        restore = ((server.get("spec") or {}).get("restore") or {}).get("fromSnapshot")
        conditions = {c["type"]: c["status"] for c in (server.get("status") or {}).get("conditions", [])}
        deleting = server["metadata"].get("deletionTimestamp")
        if restore == snapshot and conditions.get("Restored") != TRUE and not deleting:
            restoring.append(f"{kind} {server['metadata']['name']}")
    return restoring


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    """The backup goes before the object (deletionPolicy Delete): the operator approves the
    removal (phase Deleting) once no server is being restored from it, then the source's agent
    removes it and marks the snapshot Deleted. Nothing to wait for when there is no backup,
    when the policy is Retain, or when the source server is gone (then the backup stays, and
    an Event says so)."""
    status, spec, meta = body.get("status") or {}, body.get("spec") or {}, body["metadata"]
    label = status.get("backupID")
    if not label or status.get("phase") == snapshots.DELETED or spec.get("deletionPolicy") == "Retain":
        return
    kind, name = source_of(body)
    if kube.get(kind, meta["namespace"], name) is None:
        post_event(body, "Warning", "BackupLeftInRepository",
                   message=f"backup {label} stays in the repository: {kind} {name}, whose agent removes "
                           "backups, no longer exists")  # fmt: skip
        return
    users = restoring_from(kube, meta["namespace"], meta["name"])
    if users:
        message = (f"{', '.join(users)} is being restored from this snapshot: its backup is removed "
                   "once the restore is done")  # fmt: skip
        publish_status(kube, body, [Condition(snapshots.REMOVAL_APPROVED, FALSE, "InUse", message)],
                       fixed_phase=status.get("phase"))  # fmt: skip
        raise kopf.TemporaryError(message, delay=15)
    waiting = f"the agent on {kind} {name}'s primary removes backup {label}; the object goes once it has"
    publish_status(kube, body, [Condition(snapshots.REMOVAL_APPROVED, TRUE, "NoRestoreReadsIt", waiting)],
                   fixed_phase=snapshots.DELETING)  # fmt: skip
    raise kopf.TemporaryError(f"waiting for the agent of {name} to remove backup {label}", delay=10)
