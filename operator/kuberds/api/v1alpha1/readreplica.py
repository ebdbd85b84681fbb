"""ReadReplica: an asynchronous replica with its own endpoint; promote detaches it (RDS read replica)."""

from __future__ import annotations

from typing import Literal

from kuberds.api import rules as cel
from kuberds.api.kinds import Kind, server_name_rules
from kuberds.api.schema import Rule, field, model
from kuberds.api.v1alpha1.common import NAME_PATTERN, DBEngine, InstanceClass, Monitoring, Network, Scheduling, Tls
from kuberds.api.v1alpha1.server import ServerStatus
from kuberds.api.v1alpha1.storage import Storage


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
    parameters: dict[str, str] = field("Engine parameters.", default_factory=dict)
    deletion_protection: bool = field("Refuse deletion until this is false.", default=False)
    skip_final_snapshot: bool = field("Delete without a final DBSnapshot (only once promoted).", default=True)
    automation_paused: bool = field("Stop the operator from changing anything of this replica.", default=False)
    tls: Tls = field("TLS for clients.", default_factory=Tls)
    network: Network = field("Who may connect.", default_factory=Network)
    scheduling: Scheduling = field("Node placement.", default_factory=Scheduling)
    monitoring: Monitoring = field("Metrics.", default_factory=Monitoring)


KIND = Kind(
    "ReadReplica", "readreplicas", ("rr", "dbrr"), ReadReplicaSpec, ServerStatus,
    (("Source", "string", ".spec.source.dbInstance", 0), ("Promoted", "boolean", ".spec.promote", 0),
     ("Status", "string", ".status.phase", 0), ("Lag", "number", ".status.replicationLagSeconds", 0),
     ("Endpoint", "string", ".status.endpoint", 0), ("Age", "date", ".metadata.creationTimestamp", 0)),
    deletion_protected=True, object_rules=server_name_rules(),
)  # fmt: skip
