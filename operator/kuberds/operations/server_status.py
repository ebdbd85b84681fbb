"""A server's status from what it is and what was observed: members, endpoints, storage, and
its primary agent's report (restorable times, backup health)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from kuberds.builders import proxy as proxy_build
from kuberds.builders import routing as routing_build
from kuberds.builders.server import Server, proxy_endpoint, reader_endpoint, writer_endpoint
from kuberds.builders.status import (
    FALSE,
    STANDBY_LEADER,
    TRUE,
    UNKNOWN,
    Condition,
    Member,
    Observed,
    availability,
    member_from_pod,
)
from kuberds.contract import PRIMARY
from kuberds.contract.report import AgentReport
from kuberds.kube import Kube
from kuberds.operations import storage
from kuberds.operations.status import parse_time, publish_status
from kuberds.quantity import binary_quantity, to_bytes


@dataclass(frozen=True)
class ProxySeen:
    """The proxy's Deployment as an index holds it (None: there is none)."""

    deployment: dict | None


def publish_server_status(kube: Kube, body: dict, server: Server, pods: list[dict], zones: dict[str, str],
                          conditions: list[Condition], allocated: str | None = None,
                          proxy: ProxySeen | None = None, storage_updates: dict | None = None) -> dict:  # fmt: skip
    """`proxy`: what was seen of the proxy (None: not looked at, ProxyReady is left as it is);
    `storage_updates`: status.storage fields the caller decided (a growth's time and size)."""
    roles = server.engine.role_label_values
    members = sorted((with_tier(server, member_from_pod(p, zones, roles)) for p in pods), key=lambda m: m.name)
    status = body.get("status") or {}
    leader = next((m.name for m in members if m.role == PRIMARY and m.in_service), None)
    if server.standby:  # a replica's leader is a standby of its source, whatever its label says
        members = [replace(m, role=STANDBY_LEADER) if m.role == PRIMARY else m for m in members]
    observed = Observed(desired=server.replicas, members=members, previous_phase=status.get("phase"))
    primary = None if server.standby else leader
    allocated = allocated or (status.get("storage") or {}).get("allocated")
    volume = storage.fullest(pods)
    _, at_max_size = storage_status(server, status, allocated, volume, storage_updates or {})
    fields = {
        "engineVersion": server.version,
        "endpoint": writer_endpoint(server),
        "readerEndpoint": reader_endpoint(server),
        "currentPrimary": primary,
        "members": [m.as_status() for m in members],
        "readyInstances": sum(m.in_service for m in members),
        "masterUserSecretName": server.master_secret,
    }
    if server.tls_secret or "certificateSecretName" in status:  # None (TLS turned off) removes it
        fields["certificateSecretName"] = server.tls_secret
    proxy_fields, proxy_conditions = proxy_status(server, proxy, status)
    fields |= proxy_fields
    if server.promotion_tiers is not None:
        fields |= cluster_status(server, members, primary)
    report = primary_report(pods, primary)
    if report.latest_restorable_time:
        fields["latestRestorableTime"] = report.latest_restorable_time
    if report.earliest_restorable_time:
        fields["earliestRestorableTime"] = report.earliest_restorable_time
    created = body["metadata"].get("creationTimestamp")
    volume_conditions = storage.volume_conditions(volume, server.spec.storage.autoscaling is not None, at_max_size)
    conditions = [*conditions, *proxy_conditions, *volume_conditions, *backup_condition(server, report, created),
                  *restored_condition(server, status, primary)]  # fmt: skip
    if server.replica_of:
        replica_fields, replica_conditions = replica_status(server, primary_report(pods, leader), status)
        fields |= replica_fields
        conditions += replica_conditions

    def with_storage(now: dict) -> dict:
        # status.storage keeps what autoscaling recorded: built on the status being written
        # over, not on the caller's view of it (which a conflict proves stale).
        return {**fields, "storage": storage_status(server, now, allocated, volume, storage_updates or {})[0]}

    return publish_status(kube, body, [*conditions, *availability(observed)], with_storage, observed)


def with_tier(server: Server, member: Member) -> Member:
    tiers = server.promotion_tiers
    if tiers is None or member.ordinal >= len(tiers):
        return member
    return replace(member, promotion_tier=tiers[member.ordinal])


def cluster_status(server: Server, members: list[Member], writer: str | None) -> dict:
    """A DBCluster's writer, ready readers (what the scale subresource reports), the pods'
    selector (what HPA or KEDA scale by), and its custom endpoints as routed now."""
    max_lag = server.reader_max_lag_seconds
    custom = []
    for route in routing_build.routes(server):
        if route.role == "custom":
            chosen = routing_build.chosen(route, members, writer, max_lag)
            custom.append({"name": route.endpoint, "endpoint": f"{route.service}.{server.owner.namespace}.svc:"
                           f"{server.port}", "members": [m.name for m in chosen]})  # fmt: skip
    lags = [m.lag_seconds for m in members if m.name != writer and m.lag_seconds is not None]
    return {
        "writer": writer,
        "replicationLagSeconds": max(lags, default=None),
        "readyReaders": len(routing_build.readers(members, writer, max_lag)),
        "selector": ",".join(f"{k}={v}" for k, v in server.selector().items()),
        "customEndpoints": custom,
    }


def storage_status(server: Server, status: dict, allocated: str | None, volume: storage.VolumeSeen | None,
                   updates: dict) -> tuple[dict, bool]:  # fmt: skip
    """status.storage (what autoscaling recorded is kept), and whether the volumes are at
    autoscaling's maxSize."""
    # Starts from what status has: status is merge-patched, so a key left out would stay
    # there and differ from what was computed on every pass; None removes one.
    fields = {**(status.get("storage") or {}), **updates}
    requested = storage.wanted_size(server.spec.storage.size, {"storage": fields})
    fields["requested"] = requested
    if allocated:
        fields["allocated"] = allocated
    autoscaling = server.spec.storage.autoscaling
    if autoscaling:
        fields["maxSize"] = autoscaling.max_size
    elif "maxSize" in fields:
        fields["maxSize"] = None
    if volume:
        fields["used"] = binary_quantity(volume.size_bytes - volume.free_bytes)
        fields["freePercent"] = int(volume.free_percent)
    at_max_size = bool(autoscaling) and to_bytes(requested) >= to_bytes(autoscaling.max_size)
    return fields, at_max_size


def proxy_status(server: Server, seen: ProxySeen | None, status: dict) -> tuple[dict, list[Condition]]:
    """proxyEndpoint and ProxyReady: the endpoint while the proxy is asked for and can run;
    ready when one of its pods is (clients reach it through the Service)."""
    had = "proxyEndpoint" in status or any(c["type"] == "ProxyReady" for c in status.get("conditions", []))
    gone = {"proxyEndpoint": None, "proxyReaderEndpoint": None}
    if not server.spec.proxy.enabled:
        if not had:
            return {}, []
        return gone, [Condition("ProxyReady", FALSE, "ProxyDisabled", "spec.proxy.enabled is false")]
    problem = proxy_build.pool_problem(server)
    if problem:
        return gone, [Condition("ProxyReady", FALSE, "InvalidProxy", problem)]
    reader = proxy_endpoint(server, reader=True) if server.spec.proxy.reader_endpoint else None
    fields = {"proxyEndpoint": proxy_endpoint(server),
              **({"proxyReaderEndpoint": reader} if reader or "proxyReaderEndpoint" in status else {})}  # fmt: skip
    if seen is None:
        return fields, []
    deployment = seen.deployment or {}
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    wanted = server.spec.proxy.replicas
    if not deployment:
        return fields, [Condition("ProxyReady", FALSE, "Deploying", "the proxy's Deployment is being made")]
    if ready == 0:
        return fields, [Condition("ProxyReady", FALSE, "NoProxyPodReady", f"0 of {wanted} proxy pods ready")]
    return fields, [Condition("ProxyReady", TRUE, "ProxyPodsReady", f"{ready} of {wanted} proxy pods ready")]


def restored_condition(server: Server, status: dict, primary: str | None) -> list[Condition]:
    """For a server made from a backup: Restoring until its primary first serves, then Restored
    for good (a DBSnapshot it was restored from may go only then)."""
    restore = server.spec.restore
    if restore is None or server.replica_of:  # a replica is seeded from its source's backup, not restored
        return []
    before = next((c for c in status.get("conditions", []) if c["type"] == "Restored"), None)
    if before and before["status"] == TRUE:
        return []
    source = f"DBSnapshot {restore.from_snapshot}" if restore.from_snapshot else \
        f"{restore.point_in_time.source} at {restore.point_in_time.time or 'its latest restorable time'}"  # fmt: skip
    if primary:
        return [Condition("Restored", TRUE, "Restored", f"restored from {source}")]
    return [Condition("Restored", FALSE, "Restoring", f"restoring from {source}")]


def replica_status(server: Server, report: AgentReport, status: dict) -> tuple[dict, list[Condition]]:
    """A read replica's lag and Replicating condition from its leader's report; once
    promoted, promotedAt (when its leader first reported itself primary)."""
    replica = server.replica_of
    if replica.promoted:
        fields = {"replicaLagSeconds": None, "replicationLagSeconds": None}
        promoted_at = status.get("promotedAt")
        if promoted_at is None and report.role == PRIMARY:
            promoted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if promoted_at:
            return {**fields, "promotedAt": promoted_at}, [
                Condition("Replicating", FALSE, "Promoted", f"promoted at {promoted_at}: a standalone server now")
            ]
        return fields, [Condition("Replicating", FALSE, "Promoting", f"leaving {replica.description}")]
    lag = report.replica_lag_seconds
    fields = {"replicaLagSeconds": lag, "replicationLagSeconds": lag}
    if report.streaming:
        behind = f"{lag} s behind" if lag is not None else "lag unknown"
        return fields, [Condition("Replicating", TRUE, "Streaming", f"streaming from {replica.description}; {behind}")]
    if report.streaming is None:
        before = next((c for c in status.get("conditions", []) if c["type"] == "Replicating"), {})
        if before.get("reason") in (None, "Seeding"):  # never streamed yet
            return fields, [Condition("Replicating", FALSE, "Seeding", f"being seeded from {replica.description}")]
        return fields, [Condition("Replicating", UNKNOWN, "NotReported", "the replica's leader reports nothing now "
                                                                         "(restarting?)")]  # fmt: skip
    return fields, [Condition("Replicating", FALSE, "NotStreaming",
                              f"not streaming from {replica.description} now ("
                              f"{f'{lag} s behind' if lag is not None else 'lag unknown'}); "
                              "catching up from its archive where it can")]  # fmt: skip


def primary_report(pods: list[dict], primary: str | None) -> AgentReport:
    """The primary's agent report, or an empty one when there is none yet."""
    return AgentReport.from_pod(next((p for p in pods if p["metadata"]["name"] == primary), None))


# The first automated backup is taken at once; one that has not finished after this long is late.
FIRST_BACKUP_GRACE = timedelta(hours=1)
# A day's backup starts in the window: the last one may be a day and the window old before the
# next finishes; an hour more for the backup itself.
BACKUP_SLACK = timedelta(hours=1)


def backup_condition(server: Server, report: AgentReport, created: str | None = None,
                     now: datetime | None = None) -> list[Condition]:  # fmt: skip
    """BackupHealthy: archiving works and keeps up (the agent judges), and the daily base
    backup is not overdue (judged here, from the agent's lastBackupTime)."""
    if server.backup is None and server.spec.backup.retention_days == 0:
        return [Condition("BackupHealthy", TRUE, "BackupsOff", "retentionDays is 0 and no object store is configured: "
                          "no automated backups were asked for")]  # fmt: skip
    if server.backup is None:
        return [Condition("BackupHealthy", FALSE, "NoObjectStore",
                          "no backup.objectStore in the spec and none configured for the operator")]  # fmt: skip
    if report.backup_healthy is None:
        return []
    if not report.backup_healthy:
        return [Condition("BackupHealthy", FALSE, report.backup_reason or "Unknown", report.backup_message or "")]
    late = overdue_backup(server, report.last_backup_time, created, now or datetime.now(UTC))
    if late:
        return [late]
    return [Condition("BackupHealthy", TRUE, report.backup_reason or "Archiving", report.backup_message or "")]


def overdue_backup(server: Server, last: str | None, created: str | None, now: datetime) -> Condition | None:
    if server.backup.retention_days == 0:
        return None  # automated backups are off: archiving alone is what counts
    if last is None:
        if created and now - parse_time(created) > FIRST_BACKUP_GRACE:
            return Condition(
                "BackupHealthy",
                FALSE,
                "NoBackup",
                f"no automated backup has finished since the server was created at {created}",
            )
        return None
    start, end = (time.fromisoformat(t) for t in server.backup.window.split("-"))
    window = (datetime.combine(date.min, end) - datetime.combine(date.min, start)) % timedelta(days=1)
    allowed = timedelta(days=1) + window + BACKUP_SLACK
    if now - parse_time(last) > allowed:
        return Condition("BackupHealthy", FALSE, "BackupOverdue",
                         f"the last automated backup finished at {last}, more than {allowed} ago "
                         f"(window {server.backup.window})")  # fmt: skip
    return None
