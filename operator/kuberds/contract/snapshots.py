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


def removal_approved(status: dict) -> bool:
    return any(c.get("type") == REMOVAL_APPROVED and c.get("status") == "True" for c in status.get("conditions", []))


PLURAL = "dbsnapshots"
