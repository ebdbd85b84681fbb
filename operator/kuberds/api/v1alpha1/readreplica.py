"""ReadReplica: an asynchronous replica with its own endpoint; promote detaches it (RDS read replica)."""

from __future__ import annotations

from typing import Literal

from kuberds.api import rules as cel
from kuberds.api.kinds import Kind, server_name_rules
from kuberds.api.schema import Rule, Timestamp, field, model
from kuberds.api.v1alpha1.backup import Backup
from kuberds.api.v1alpha1.common import (
    NAME_PATTERN,
    NO_CONTROL_CHARACTERS,
    DBEngine,
    InstanceClass,
    Monitoring,
    Network,
    Scheduling,
    Tls,
)
from kuberds.api.v1alpha1.server import ServerStatus
from kuberds.api.v1alpha1.storage import Storage

MAX_REPLICAS_PER_SOURCE = 15  # RDS's limit


@model(
    Rule(cel.exactly_one_of("dbInstance", "dbCluster", "external"),
         "source needs exactly one of dbInstance, dbCluster or external"),
)  # fmt: skip
class ReplicaSource:
    """What the replica follows."""

    db_instance: str | None = field("A DBInstance in this namespace.", pattern=NAME_PATTERN, max_length=63)
    db_cluster: str | None = field("A DBCluster in this namespace.", pattern=NAME_PATTERN, max_length=63)
    external: ExternalSource | None = field("A server outside this cluster (cross-cluster replica).")


@model()
class ExternalSource:
    """A primary reached over the network."""

    engine: DBEngine = field("Engine of the external server.")
    host: str = field("Host name or address.")
    port: int = field("Port.", default=5432, minimum=1, maximum=65535)
    credentials_secret_name: str = field(
        "Secret (same namespace) with keys `username` and `password` of a replication user.",
        pattern=NAME_PATTERN,
    )
    ssl_mode: Literal["disable", "require", "verify-ca", "verify-full"] = field(
        "TLS towards the external server.", default="verify-full"
    )


@model(
    Rule("self.source == oldSelf.source", "source cannot change; create another ReadReplica",
         field_path=".source"),
    Rule("!oldSelf.promote || self.promote", "promote cannot be undone: a promoted replica is a standalone "
         "server", field_path=".promote"),
)  # fmt: skip
class ReadReplicaSpec:
    """An asynchronous replica with its own endpoint; promote: true detaches it (RDS read replica)."""

    source: ReplicaSource = field("The server to replicate.")
    instance_class: InstanceClass = field("Compute and memory.", default="db.t3.micro")
    storage: Storage = field("The data volume.", default_factory=Storage)
    promote: bool = field("Stop replicating and become a standalone writable server. Cannot be undone.", default=False)
    parameters: dict[str, str] = field(
        "Engine parameters: the same allow-list as the source's engine (the operator judges values).",
        default_factory=dict, max_properties=64, value_pattern=NO_CONTROL_CHARACTERS, value_max_length=1024,
    )  # fmt: skip
    backup: Backup = field(
        "Automated backups once promoted (a replica that follows its source has the source's backups).",
        default_factory=Backup,
    )
    deletion_protection: bool = field("Refuse deletion until this is false.", default=False)
    skip_final_snapshot: bool = field(
        "Must stay true for now: a final DBSnapshot of a promoted replica is not offered yet (its volume is retained "
        "on deletion, as every server's).",
        default=True,
        rules=[Rule("self", "skipFinalSnapshot: final snapshots of read replicas are not offered yet (the volume is "
                    "retained on deletion)")],
    )  # fmt: skip
    automation_paused: bool = field("Stop the operator from changing anything of this replica.", default=False)
    tls: Tls = field("TLS for clients.", default_factory=Tls)
    network: Network = field("Who may connect.", default_factory=Network)
    scheduling: Scheduling = field("Node placement.", default_factory=Scheduling)
    monitoring: Monitoring = field("Metrics.", default_factory=Monitoring)


@model()
class ReplicaSourceStatus:
    """The source as the replica first saw it: a replica whose source is gone, or that was
    promoted, keeps serving with these."""

    kind: str | None = field("DBInstance, DBCluster, or External.")
    name: str | None = field("The source's name (host:port for an external source).")
    uid: str | None = field("The source object's uid: a source deleted and made again is another database.")
    engine: str | None = field("The source's engine.")
    engine_version: str | None = field("The source's major version.")
    port: int | None = field("The source's port (the replica serves on the same).")
    database_name: str | None = field("The source's database.")
    master_username: str | None = field("The source's master user (the replica has the source's users).")
    seeded_from_backup: bool | None = field(
        "Seeded from the source's backups (and their archive as a fallback), decided once: else a base backup."
    )


@model()
class ReadReplicaStatus(ServerStatus):
    """A read replica's status: the server's, and what it follows."""

    source: ReplicaSourceStatus | None = field("What this replica follows (or followed, once promoted).")
    replica_lag_seconds: float | None = field(
        "Seconds behind the source: 0 when streaming and replayed; else the age of the newest source heartbeat "
        "or commit replayed (the source's agent commits a heartbeat every few seconds, so an idle source reads 0)."
    )
    promoted_at: Timestamp | None = field("When the replica became a standalone writable server.")


KIND = Kind(
    "ReadReplica", "readreplicas", ("rr", "dbrr"), ReadReplicaSpec, ReadReplicaStatus,
    (("Source", "string", ".status.source.name", 0), ("Promoted", "boolean", ".spec.promote", 0),
     ("Status", "string", ".status.phase", 0), ("Lag", "number", ".status.replicaLagSeconds", 0),
     ("Endpoint", "string", ".status.endpoint", 0), ("Age", "date", ".metadata.creationTimestamp", 0)),
    deletion_protected=True, object_rules=server_name_rules(),
)  # fmt: skip
