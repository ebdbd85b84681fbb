"""DBSnapshots as the agent serves them: it lists its server's, takes and removes their backups,
and writes their status; the operator creates final snapshots and holds deletions."""

from __future__ import annotations

from kuberds import API_GROUP, API_VERSION

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"
KIND = "DBSnapshot"
# spec.source names the server by one of these keys, after its kind.
SOURCE_FIELDS = {"DBInstance": "dbInstance", "DBCluster": "dbCluster", "CacheCluster": "cacheCluster"}
# Phases only the source's agent writes; the operator writes Pending, Failed (no source) and
# Deleting.
CREATING, AVAILABLE, DELETED, FAILED = "Creating", "Available", "Deleted", "Failed"
AGENT_PHASES = (CREATING, AVAILABLE, DELETED, FAILED)
DELETING = "Deleting"
# The operator's approval to remove a deleted snapshot's backup, given once no server is being
# restored from it: a condition of this type with status True. The agent waits for it.
REMOVAL_APPROVED = "RemovalApproved"


# What Ready says in each phase the agent writes (health checks, `kubectl wait`, Argo CD read
# conditions, not phases): status, and the message.
READY_IN_PHASE = {
    CREATING: ("False", "the agent on the source's primary is taking the backup"),
    AVAILABLE: ("True", "the backup is taken and can be restored"),
    FAILED: ("False", "the backup failed: the source's agent log says why; delete this snapshot and take another"),
}


def with_ready(conditions: list[dict], phase: str, generation: int | None, now: str) -> list[dict]:
    """`conditions` with Ready saying `phase` (one the agent writes); the others kept."""
    status, message = READY_IN_PHASE[phase]
    before = next((c for c in conditions if c.get("type") == "Ready"), {})
    since = before.get("lastTransitionTime") if before.get("status") == status else now
    ready = {"type": "Ready", "status": status, "reason": phase, "message": message, "lastTransitionTime": since}
    if generation is not None:
        ready["observedGeneration"] = generation
    return [c for c in conditions if c.get("type") != "Ready"] + [ready]


def ready_lags(status: dict) -> bool:
    """A phase the agent writes that the Ready condition does not say yet."""
    phase = status.get("phase")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return phase in READY_IN_PHASE and ready.get("reason") != phase


def removal_approved(status: dict) -> bool:
    return any(c.get("type") == REMOVAL_APPROVED and c.get("status") == "True" for c in status.get("conditions", []))


PLURAL = "dbsnapshots"
