"""DBSnapshots as the agent serves them: it lists its server's, takes and removes their backups,
and writes their status; the operator creates final snapshots and holds deletions."""

from __future__ import annotations

from kuberds import API_GROUP, API_VERSION

API_VERSION_FULL = f"{API_GROUP}/{API_VERSION}"
KIND = "DBSnapshot"
# spec.source names the server by one of these keys, after its kind.
SOURCE_FIELDS = {"DBInstance": "dbInstance", "DBCluster": "dbCluster"}
# Phases only the source's agent writes; the operator writes Pending, Failed (no source) and
# Deleting: its approval to remove the backup of a deleted snapshot, given once no server is
# being restored from it. The agent removes a backup only in that phase.
CREATING, AVAILABLE, DELETED, FAILED = "Creating", "Available", "Deleted", "Failed"
AGENT_PHASES = (CREATING, AVAILABLE, DELETED, FAILED)
DELETING = "Deleting"
PLURAL = "dbsnapshots"
