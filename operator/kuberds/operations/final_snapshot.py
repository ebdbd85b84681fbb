"""The finalizer of a server kind: a final DBSnapshot unless skipFinalSnapshot; volumes are
always kept.

It never gives up: an error that would end another handler keeps this one waiting (Kopf
releases the finalizer after a permanent failure, and the data would go unsaved).
"""

from __future__ import annotations

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.builders import names
from kuberds.builders.meta import Owner
from kuberds.builders.snapshot import final_snapshot
from kuberds.builders.status import FALSE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import snapshots
from kuberds.engines import engine_for
from kuberds.kube import Kube, NamespaceTerminating
from kuberds.operations.status import now, parse_time, post_event, publish_status


def delete(kube: Kube, config: OperatorConfig, body: dict, spec: api.ServerSpec) -> None:
    try:
        _delete(kube, config, body, spec)
    except kopf.PermanentError as error:
        publish_status(kube, body, [Condition("FinalSnapshot", FALSE, "Failed", str(error))])
        raise kopf.TemporaryError(f"final snapshot failed, retrying: {error}", delay=60) from error


def _delete(kube: Kube, config: OperatorConfig, body: dict, spec: api.ServerSpec) -> None:
    meta = body["metadata"]
    if spec.skip_final_snapshot:
        post_event(body, "Normal", "DeletedWithoutFinalSnapshot",
                   message="skipFinalSnapshot is true; the volumes are retained")  # fmt: skip
        return
    engine = engine_for(spec.engine)
    if engine is not None and not engine.backups:
        # Nothing is lost silently: the user says the volumes (retained) are enough.
        condition = Condition("FinalSnapshot", FALSE, "NotOffered",
                              f"snapshots of {engine.name} servers are not offered yet: set spec.skipFinalSnapshot "
                              "to true to delete it (its volumes are retained)")  # fmt: skip
        publish_status(kube, body, [condition])
        raise kopf.TemporaryError(condition.message, delay=10)
    deleted_at = meta.get("deletionTimestamp") or now()
    name = spec.final_snapshot_name or names.final_snapshot(meta["name"], deleted_at)
    owner = Owner.of(body)
    try:
        snapshot, _ = kube.create_if_absent(final_snapshot(owner, name))
    except NamespaceTerminating as error:
        condition = Condition("FinalSnapshot", FALSE, "NamespaceTerminating",
                              f"the namespace is being deleted: no final DBSnapshot can be made in it; set "
                              f"spec.skipFinalSnapshot to true to let this {owner.kind} go")  # fmt: skip
        publish_status(kube, body, [condition])
        raise kopf.TemporaryError(condition.message, delay=60) from error
    source = ((snapshot.get("spec") or {}).get("source") or {}).get(snapshots.SOURCE_FIELDS[owner.kind])
    if source != meta["name"]:
        taken = f"DBSnapshot {name} exists and is not a snapshot of this {owner.kind}; set finalSnapshotName"
        publish_status(kube, body, [Condition("FinalSnapshot", FALSE, "NameTaken", taken)])
        raise kopf.TemporaryError(f"final snapshot name {name} is taken", delay=60)
    phase = (snapshot.get("status") or {}).get("phase")
    if phase == snapshots.AVAILABLE:
        post_event(body, "Normal", "FinalSnapshotTaken", message=f"DBSnapshot {name} is available")
        return
    waited = (parse_time(now()) - parse_time(deleted_at)).total_seconds()
    if waited > config.final_snapshot_timeout_seconds:
        condition = Condition("FinalSnapshot", FALSE, "TimedOut",
                              f"DBSnapshot {name} not available after {int(waited)}s (phase {phase}); the "
                              f"{owner.kind} stays until it is, or until spec.skipFinalSnapshot is "
                              "set to true")  # fmt: skip
    else:
        condition = Condition("FinalSnapshot", FALSE, "InProgress",
                              f"waiting for DBSnapshot {name} (phase {phase or 'Pending'})")  # fmt: skip
    publish_status(kube, body, [condition], {"finalSnapshot": name})
    # Short delay either way: setting skipFinalSnapshot must take effect soon.
    raise kopf.TemporaryError(condition.message, delay=10)
