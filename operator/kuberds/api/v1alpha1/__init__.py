"""The kuberds.io/v1alpha1 API: the one source of truth for every kind's spec and status.

One module per kind (its spec, status and `KIND`), over shared pieces (common, storage,
backup, and server for the database server kinds). crds/*.yaml, the chart's CRDs and
docs/api-reference.md are generated from these models (`make generate`); a test fails when
they are stale. Field names follow RDS, Aurora and ElastiCache where a user would look.
"""

from __future__ import annotations

from kuberds.api.kinds import Kind
from kuberds.api.v1alpha1 import cachecluster, dbcluster, dbinstance, dbsnapshot, readreplica
from kuberds.api.v1alpha1.backup import Backup, BackupEncryption, ObjectStore, PointInTime, Restore
from kuberds.api.v1alpha1.cachecluster import CacheClusterSpec, CacheClusterStatus
from kuberds.api.v1alpha1.common import (
    IDENTIFIER_PATTERN,
    MANAGED_PARAMETERS,
    NAME_PATTERN,
    RESERVED_USERNAMES,
    ClientSelector,
    Condition,
    LabelSelector,
    MemberStatus,
    Monitoring,
    Network,
    Scheduling,
    Tls,
    Toleration,
)
from kuberds.api.v1alpha1.dbcluster import CustomEndpoint, DBClusterSpec
from kuberds.api.v1alpha1.dbinstance import DBInstanceSpec
from kuberds.api.v1alpha1.dbsnapshot import DBSnapshotSpec, DBSnapshotStatus, SnapshotRepository
from kuberds.api.v1alpha1.readreplica import MAX_REPLICAS_PER_SOURCE, ReadReplicaSpec, ReadReplicaStatus
from kuberds.api.v1alpha1.server import Proxy, ServerSpec, ServerStatus
from kuberds.api.v1alpha1.storage import Storage, StorageAutoscaling, StorageStatus

# Every kind of the API, in the order the generated files and the reference list them.
KINDS: tuple[Kind, ...] = tuple(m.KIND for m in (dbinstance, dbcluster, readreplica, cachecluster, dbsnapshot))

__all__ = [
    "IDENTIFIER_PATTERN", "KINDS", "MANAGED_PARAMETERS", "MAX_REPLICAS_PER_SOURCE", "NAME_PATTERN",
    "RESERVED_USERNAMES",
    "Backup", "BackupEncryption", "CacheClusterSpec", "CacheClusterStatus", "ClientSelector", "Condition",
    "CustomEndpoint", "DBClusterSpec", "DBInstanceSpec", "DBSnapshotSpec", "DBSnapshotStatus", "LabelSelector",
    "MemberStatus",
    "Monitoring", "Network", "ObjectStore", "PointInTime", "Proxy", "ReadReplicaSpec",
    "ReadReplicaStatus", "Restore", "Scheduling",
    "ServerSpec", "ServerStatus", "SnapshotRepository", "Storage", "StorageAutoscaling", "StorageStatus", "Tls",
    "Toleration",
]  # fmt: skip
