"""How the agent reports: Prometheus metrics, and its typed report (kuberds.contract.report)
as an annotation on its own pod, which the operator folds into the server's status."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from kuberds.agent.decisions import RUNNING, Observation
from kuberds.agent.metrics_http import serve_metrics
from kuberds.agent.schedule import Archiving
from kuberds.contract import AGENT_STATUS_ANNOTATION
from kuberds.contract.report import AgentReport

log = logging.getLogger("kuberds.agent")

# Times move every few seconds; republishing each move would turn every pod into a stream of
# writes. They are republished when they moved this much, or when anything else changed.
TIME_FIELDS = ("latestRestorableTime", "earliestRestorableTime", "lastBackupTime")
# Lag moves with every write; it is republished only when it crosses this many bytes.
LAG_RESOLUTION_BYTES = 16 * 2**20
# Free space too: republished when it moved by this share of the volume (or 64 MiB, the
# smaller), so a filling volume is seen within a percent and an idle one causes no writes.
FREE_RESOLUTION = 0.005
FREE_RESOLUTION_BYTES = 64 * 2**20
TIME_RESOLUTION_SECONDS = 60
# Readings that move all the time, republished only when they moved this much (or crossed
# from or to nothing): seconds of lag, points of CPU, client sessions.
RESOLUTIONS = {"replicaLagSeconds": 1.0, "cpuPercent": 5.0, "clientConnections": 5}


class AgentMetrics:
    """The engine's own gauges are named kuberds_<engine>_*; archiving and backups are the
    same for every engine (kuberds_archive_*, kuberds_backup_*)."""

    def __init__(self, engine: str):
        self.registry = CollectorRegistry()
        r = self.registry

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, registry=r)

        prefix = f"kuberds_{engine}"
        self.up = gauge(f"{prefix}_up", "1 when the engine runs under its HA manager")
        self.primary = gauge(f"{prefix}_primary", "1 on the primary, 0 on a standby")
        self.pending_restart = gauge(f"{prefix}_pending_restart", "1 when a parameter waits for a restart")
        self.replication_lag = gauge(f"{prefix}_replication_lag_bytes",
                                     "On the primary: log bytes the slowest standby has still to replay")  # fmt: skip
        self.archive_behind = gauge("kuberds_archive_segments_behind", "Log segments written and not yet archived")
        self.archive_failed = gauge("kuberds_archive_failed_count", "Failed archive attempts")
        self.last_archived = gauge("kuberds_archive_last_success_timestamp_seconds", "Last log segment archived")
        self.latest_restorable = gauge("kuberds_backup_latest_restorable_timestamp_seconds",
                                       "Latest moment a point-in-time restore can reach")  # fmt: skip
        self.earliest_restorable = gauge("kuberds_backup_earliest_restorable_timestamp_seconds",
                                         "Earliest moment a point-in-time restore can reach")  # fmt: skip
        self.last_backup = gauge("kuberds_backup_last_success_timestamp_seconds", "End of the newest automated backup")
        self.backup_seconds = gauge("kuberds_backup_duration_seconds", "Duration of the last backup")
        self.backup_failures = Counter("kuberds_backup_failures", "Backups that failed", registry=r)
        self.volume_size = gauge("kuberds_volume_size_bytes", "Size of the data volume's filesystem")
        self.volume_free = gauge("kuberds_volume_free_bytes", "Space the database may still write on its volume")

    def serve(self, address: str, port: int) -> None:
        serve_metrics(port, address, self.registry)  # with the certificates' expiry, as every pod

    def volume(self, size: int | None, free: int | None) -> None:
        if size is not None and free is not None:
            self.volume_size.set(size)
            self.volume_free.set(free)

    def update(self, observation: Observation, archiving: Archiving | None, lag: int | None,
               latest_restorable: datetime | None, earliest: datetime | None,
               last_backup: datetime | None) -> None:  # fmt: skip
        self.up.set(1 if observation.state == RUNNING else 0)
        self.primary.set(1 if observation.primary else 0)
        self.pending_restart.set(1 if observation.pending_restart else 0)
        if archiving is not None:
            self.archive_behind.set(archiving.segments_behind)
            self.archive_failed.set(archiving.failed_count)
            if archiving.last_archived_time:
                self.last_archived.set(archiving.last_archived_time.timestamp())
        if lag is not None:
            self.replication_lag.set(lag)
        for gauge, moment in ((self.latest_restorable, latest_restorable), (self.earliest_restorable, earliest),
                              (self.last_backup, last_backup)):  # fmt: skip
            if moment:
                gauge.set(moment.timestamp())


def volume_usage(path: Path) -> tuple[int | None, int | None]:
    """(size, free to an unprivileged writer) of the filesystem holding path, in bytes;
    (None, None) when it cannot be read (the volume not mounted yet)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None, None
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def worth_publishing(status: dict, published: dict) -> bool:
    for key, value in status.items():
        old = published.get(key)
        if key == "replicationLagBytes" and value is not None and old is not None:
            if abs(value - old) >= LAG_RESOLUTION_BYTES:
                return True
        elif key == "volumeFreeBytes" and value is not None and old is not None:
            step = min(FREE_RESOLUTION * (status.get("volumeBytes") or 0), FREE_RESOLUTION_BYTES)
            if abs(value - old) >= max(step, 1):
                return True
        elif key in RESOLUTIONS and value is not None and old is not None:
            if abs(value - old) >= RESOLUTIONS[key]:
                return True
        elif key in TIME_FIELDS and value and old:
            moved = abs(datetime.fromisoformat(value).timestamp() - datetime.fromisoformat(old).timestamp())
            if moved >= TIME_RESOLUTION_SECONDS:
                return True
        elif value != old:
            return True
    return False


def publish(kube, namespace: str, pod: str, report: AgentReport, published: dict) -> dict:
    """Merge-patches the annotation when worth it; returns what is now published."""
    status = report.to_data()
    if not worth_publishing(status, published):
        return published
    body = {"metadata": {"annotations": {AGENT_STATUS_ANNOTATION: json.dumps(status, sort_keys=True)}}}
    try:
        kube.merge_patch("Pod", namespace, pod, body)
    except Exception as error:  # the API server may be away; the next loop tries again
        log.warning("publishing status failed: %s", error)
        return published
    return status
