"""The DBSnapshots of this agent's server, as requests for its backup tool: listed at most
every SNAPSHOT_LIST_SECONDS (a request's latency is a backup's anyway), and their status
written back. Engine-neutral: the engine's agent says which backup a snapshot's uid has."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kuberds.agent.decisions import SnapshotRequest
from kuberds.agent.kube import KubeConflict, KubeError
from kuberds.contract import snapshots

log = logging.getLogger("kuberds.agent")

SNAPSHOT_LIST_SECONDS = 10.0
CONFLICT_ATTEMPTS = 5  # a status write that keeps losing to other writers gives up (and is retried)


class Snapshots:
    def __init__(self, kube, namespace: str, server: str, source_kind: str = "DBInstance"):
        self.kube, self.namespace, self.server = kube, namespace, server
        # A kind DBSnapshots cannot name (a ReadReplica) has none to take.
        self.source_field = snapshots.SOURCE_FIELDS.get(source_kind)
        self.cache: tuple[float, list[dict]] = (0.0, [])

    def requests(self, label_for: Callable[[str], str | None], found: Callable[[str, str], None] | None = None
                 ) -> list[SnapshotRequest]:  # fmt: skip
        """`label_for(uid)`: the backup already taken for a snapshot, from the repository;
        `found(name, label)` is told of one taken before the agent could say so."""
        if self.kube is None:
            return []
        listed_at, listed = self.cache
        if time.monotonic() - listed_at >= SNAPSHOT_LIST_SECONDS:
            try:
                listed = self.kube.list(snapshots.KIND, self.namespace)
            except KubeError as error:  # the API server is away: keep working on the last view
                log.warning("listing DBSnapshots failed, using the last list: %s", error)
            self.cache = (time.monotonic(), listed)
        requests = []
        for snap in listed:
            if (snap.get("spec", {}).get("source") or {}).get(self.source_field) != self.server:
                continue
            status = snap.get("status") or {}
            if snapshots.ready_lags(status):  # taken before the agent said its phase with Ready too
                self.set_status(snap["metadata"]["name"], {"phase": status["phase"]})
            if status.get("phase") in (snapshots.FAILED, snapshots.DELETED):
                continue
            meta = snap["metadata"]
            label = status.get("backupID") or label_for(meta["uid"])
            if label and not status.get("backupID") and found:
                found(meta["name"], label)  # taken, but the agent stopped before saying so
            requests.append(SnapshotRequest(
                name=meta["name"], uid=meta["uid"], backup_label=label,
                deleting="deletionTimestamp" in meta, retain=snap["spec"].get("deletionPolicy") == "Retain",
                removal_approved=snapshots.removal_approved(status),
            ))  # fmt: skip
        return requests

    def get(self, name: str) -> dict | None:
        return self.kube.get(snapshots.KIND, self.namespace, name) if self.kube else None

    def set_status(self, name: str, status: dict) -> None:
        """Writes `status`; a phase the agent owns is said by the Ready condition too."""
        self.cache = (0.0, [])  # the next look sees this write
        if self.kube is None:
            return
        if status.get("phase") not in snapshots.READY_IN_PHASE:
            self.kube.merge_patch(snapshots.KIND, self.namespace, name, {"status": status}, subresource="status")
            return
        # The operator writes conditions too (RemovalApproved), and a merge patch replaces the whole
        # list: the write is conditional on the version read, and read again when another won.
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            current = self.get(name)
            if current is None:
                return  # deleted meanwhile: nothing left to say it on
            try:
                self.kube.merge_patch(snapshots.KIND, self.namespace, name, ready_patch(current, status),
                                      subresource="status")  # fmt: skip
                return
            except KubeConflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise


def ready_patch(current: dict, status: dict) -> dict:
    """The patch writing `status` with Ready saying its phase, conditional on `current`'s version."""
    meta, conditions = current["metadata"], (current.get("status") or {}).get("conditions") or []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = snapshots.with_ready(conditions, status["phase"], meta.get("generation"), now)
    return {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": {**status, "conditions": ready}}
