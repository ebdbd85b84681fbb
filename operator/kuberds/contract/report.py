"""What an agent tells the operator: a JSON annotation (contract.AGENT_STATUS_ANNOTATION) on
its own pod. The operator folds the primary's into the server's status; the agent never
writes a custom resource's status itself, so each status has one writer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kuberds import codec
from kuberds.contract import AGENT_STATUS_ANNOTATION


@dataclass(frozen=True)
class AgentReport:
    role: str | None = None  # contract.PRIMARY / REPLICA, or None while the HA manager is silent
    state: str | None = None  # the engine's state as its HA manager says it (running, starting, …)
    # A standby's: it confirms every commit, so a switchover to it loses nothing (None: not said,
    # or not a synchronous setup).
    synchronous_standby: bool | None = None
    # A primary's: False until it has set the master user and password (a restored server still
    # holds its source's); None on a standby, which has the primary's accounts by replication.
    accounts_ready: bool | None = None
    backup_healthy: bool | None = None  # None: nothing known (a standby, no backups)
    backup_reason: str | None = None
    backup_message: str | None = None
    latest_restorable_time: str | None = None  # RFC 3339
    earliest_restorable_time: str | None = None
    last_backup_time: str | None = None
    archive_segments_behind: int | None = None
    replication_lag_bytes: int | None = None
    # A replica: how far behind its primary it is, in seconds (a read replica's leader: behind
    # its source). 0 when it has replayed all it received and is streaming; else the age of
    # the newest heartbeat or commit it replayed, so an idle primary does not look like lag.
    replica_lag_seconds: float | None = None
    # Load, for reader autoscaling: CPU used since the last report in percent of the
    # container's limit, and client sessions open now.
    cpu_percent: float | None = None
    client_connections: int | None = None
    # A read replica's leader is streaming from its source now.
    streaming: bool | None = None
    # The data volume as the member sees it (statvfs of the data directory): the filesystem's
    # size and what the database may still write. Storage autoscaling decides from these.
    volume_bytes: int | None = None
    volume_free_bytes: int | None = None
    # The member's HA API is served over TLS with the server's certificate (verify it with the
    # server's CA); None: plain HTTP, or an agent from before.
    api_tls: bool | None = None
    doing: list[str] = field(default_factory=list)  # the decision step's reasons

    def to_data(self) -> dict:
        """JSON data with every key, unset ones null: a key going back to null is a change."""
        return codec.encode(self, omit_none=False)

    @classmethod
    def from_pod(cls, pod: dict | None) -> AgentReport:
        """The report on a pod; an empty one when there is none or it cannot be read (an agent
        from before a field, or none at all, reads as "not said")."""
        annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        try:
            data = json.loads(annotations.get(AGENT_STATUS_ANNOTATION) or "{}")
            return codec.decode(cls, data if isinstance(data, dict) else {})
        except (ValueError, TypeError):
            return cls()
