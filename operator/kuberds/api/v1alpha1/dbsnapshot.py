"""DBSnapshot: a manual snapshot of a server, never removed by retention."""

from __future__ import annotations

from typing import Literal

from kuberds.api import rules as cel
from kuberds.api.kinds import Kind
from kuberds.api.schema import Rule, Timestamp, field, model
from kuberds.api.v1alpha1.backup import ObjectStore
from kuberds.api.v1alpha1.common import NAME_PATTERN, Condition


@model(Rule(cel.exactly_one_of("dbInstance", "dbCluster", "cacheCluster"),
            "source needs exactly one of dbInstance, dbCluster or cacheCluster"))  # fmt: skip
class SnapshotSource:
    """The server to snapshot."""

    db_instance: str | None = field("A DBInstance in this namespace.", pattern=NAME_PATTERN, max_length=63)
    db_cluster: str | None = field("A DBCluster in this namespace.", pattern=NAME_PATTERN, max_length=63)
    cache_cluster: str | None = field("A Redis CacheCluster in this namespace (an RDB snapshot).",
                                      pattern=NAME_PATTERN, max_length=63)  # fmt: skip


@model(Rule("self == oldSelf", "a DBSnapshot's spec cannot change; create another snapshot"))
class DBSnapshotSpec:
    """A manual snapshot: never removed by automated retention. Deleting the object deletes the backup
    unless deletionPolicy is Retain."""

    source: SnapshotSource = field("The server to snapshot.")
    deletion_policy: Literal["Delete", "Retain"] = field(
        "What happens to the backup in object storage when this object is deleted.", default="Delete"
    )


@model()
class SnapshotRepository:
    """Where the backup is and what reads it: kept on the snapshot, so it can be restored after
    its server is gone (a final snapshot above all)."""

    store: ObjectStore = field("The object store, as the source server's spec (or the operator) named it.")
    path: str = field("The repository's prefix in the bucket.")
    stanza: str = field("The repository's name in it (the source server's name).")
    encrypted: bool = field("Whether the repository is encrypted.", default=True)
    key_secret_name: str | None = field("Secret (this namespace) with the repository's passphrase, key `key`.")


@model()
class DBSnapshotStatus:
    """Observed state of a snapshot."""

    phase: str | None = field("Pending, Creating, Available, Failed, Deleting.")
    observed_generation: int | None = field("metadata.generation the status was computed for.")
    conditions: list[Condition] = field("Detailed state.", default_factory=list, list_map_keys=("type",))
    engine: str | None = field("Engine of the source.")
    engine_version: str | None = field("Engine version of the source.")
    snapshot_time: Timestamp | None = field("Moment the snapshot's data is consistent to.")
    size_bytes: int | None = field("Size of the backup in object storage.")
    backup_id: str | None = field("The backup's id in the repository (pgBackRest label, etc.).")
    kind: Literal["manual", "final"] | None = field("manual, or final (taken when its server was deleted).")
    repository: SnapshotRepository | None = field("Where the backup is, for restores after the source is gone.")


KIND = Kind(
    "DBSnapshot", "dbsnapshots", ("dbsnap", "snap"), DBSnapshotSpec, DBSnapshotStatus,
    (("Instance", "string", ".spec.source.dbInstance", 0), ("Cluster", "string", ".spec.source.dbCluster", 0),
     ("Cache", "string", ".spec.source.cacheCluster", 1),
     ("Status", "string", ".status.phase", 0), ("Snapshot Time", "date", ".status.snapshotTime", 0),
     ("Kind", "string", ".status.kind", 1), ("Age", "date", ".metadata.creationTimestamp", 0)),
)  # fmt: skip
