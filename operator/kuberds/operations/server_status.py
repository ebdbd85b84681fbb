"""A server's status from what it is and what was observed: members, endpoints, storage, and
its primary agent's report (restorable times, backup health)."""

from __future__ import annotations

from kuberds.builders.server import Server, reader_endpoint, writer_endpoint
from kuberds.builders.status import FALSE, TRUE, Condition, Observed, availability, member_from_pod
from kuberds.contract import PRIMARY
from kuberds.contract.report import AgentReport
from kuberds.kube import Kube
from kuberds.operations.status import publish_status


def publish_server_status(kube: Kube, body: dict, server: Server, pods: list[dict], zones: dict[str, str],
                          conditions: list[Condition], allocated: str | None = None) -> dict:  # fmt: skip
    roles = server.engine.role_label_values
    members = sorted((member_from_pod(p, zones, roles) for p in pods), key=lambda m: m.name)
    status = body.get("status") or {}
    observed = Observed(desired=server.replicas, members=members, previous_phase=status.get("phase"))
    primary = next((m.name for m in members if m.role == PRIMARY and m.in_service), None)
    allocated = allocated or (status.get("storage") or {}).get("allocated")
    fields = {
        "engineVersion": server.version,
        "endpoint": writer_endpoint(server),
        "readerEndpoint": reader_endpoint(server),
        "currentPrimary": primary,
        "members": [m.as_status() for m in members],
        "readyInstances": sum(m.in_service for m in members),
        "masterUserSecretName": server.master_secret,
        "storage": {"requested": server.spec.storage.size, **({"allocated": allocated} if allocated else {})},
    }
    if server.tls_secret or "certificateSecretName" in status:  # None (TLS turned off) removes it
        fields["certificateSecretName"] = server.tls_secret
    report = primary_report(pods, primary)
    if report.latest_restorable_time:
        fields["latestRestorableTime"] = report.latest_restorable_time
    if report.earliest_restorable_time:
        fields["earliestRestorableTime"] = report.earliest_restorable_time
    conditions = [*conditions, *backup_condition(server, report), *restored_condition(server, status, primary)]
    return publish_status(kube, body, [*conditions, *availability(observed)], fields, observed)


def restored_condition(server: Server, status: dict, primary: str | None) -> list[Condition]:
    """For a server made from a backup: Restoring until its primary first serves, then Restored
    for good (a DBSnapshot it was restored from may go only then)."""
    restore = server.spec.restore
    if restore is None:
        return []
    before = next((c for c in status.get("conditions", []) if c["type"] == "Restored"), None)
    if before and before["status"] == TRUE:
        return []
    source = f"DBSnapshot {restore.from_snapshot}" if restore.from_snapshot else \
        f"{restore.point_in_time.source} at {restore.point_in_time.time or 'its latest restorable time'}"  # fmt: skip
    if primary:
        return [Condition("Restored", TRUE, "Restored", f"restored from {source}")]
    return [Condition("Restored", FALSE, "Restoring", f"restoring from {source}")]


def primary_report(pods: list[dict], primary: str | None) -> AgentReport:
    """The primary's agent report, or an empty one when there is none yet."""
    return AgentReport.from_pod(next((p for p in pods if p["metadata"]["name"] == primary), None))


def backup_condition(server: Server, report: AgentReport) -> list[Condition]:
    if server.backup is None:
        return [Condition("BackupHealthy", FALSE, "NoObjectStore",
                          "no backup.objectStore in the spec and none configured for the operator")]  # fmt: skip
    if report.backup_healthy is None:
        return []
    return [Condition("BackupHealthy", TRUE if report.backup_healthy else FALSE, report.backup_reason or "Unknown",
                      report.backup_message or "")]  # fmt: skip
