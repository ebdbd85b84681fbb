"""The kuberds.io/v1alpha1 API: the one source of truth for every kind's spec and status.

crds/*.yaml, the chart's CRDs and docs/api-reference.md are generated from these models
(`make generate`); a test fails when they are stale. Field names follow RDS, Aurora and
ElastiCache where a user would look for them.
"""

from __future__ import annotations

from typing import Literal

from kuberds.api import rules as cel
from kuberds.api.classes import (
    CACHE_ENGINE_VERSIONS,
    CACHE_NODE_TYPES,
    DB_ENGINE_VERSIONS,
    DB_INSTANCE_CLASSES,
)
from kuberds.api.schema import Quantity, Rule, Timestamp, field, model

DBEngine = Literal["postgres", "mysql", "mariadb"]
CacheEngine = Literal["redis", "memcached"]
InstanceClass = Literal[tuple(DB_INSTANCE_CLASSES)]
CacheNodeType = Literal[tuple(CACHE_NODE_TYPES)]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # a Kubernetes object name (DNS label)
IDENTIFIER_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_]*$"  # a database or user name
RESERVED_USERNAMES = ["postgres", "root", "replicator", "rewind", "kuberds", "admin", "mysql", "rdsadmin"]
# Parameters kuberds sets itself: letting a user override them would break HA or backups.
MANAGED_PARAMETERS = [
    "archive_command", "archive_mode", "restore_command", "recovery_target_time", "primary_conninfo",
    "synchronous_standby_names", "hba_file", "data_directory", "port", "listen_addresses",
    "ssl", "ssl_cert_file", "ssl_key_file", "log_bin", "gtid_mode", "server_id", "bind-address", "datadir",
]  # fmt: skip


def _version_rule(versions: dict[str, tuple[str, ...]]) -> Rule:
    offered = " || ".join(f"(self.engine == {e!r} && self.engineVersion in {list(v)!r})" for e, v in versions.items())
    listing = "; ".join(f"{e} {', '.join(v)}" for e, v in versions.items())
    return Rule(
        f"!has(self.engineVersion) || {offered}",
        f"engineVersion is not offered for this engine (offered: {listing})",
        field_path=".engineVersion",
    )


# ---------------------------------------------------------------- shared pieces


@model()
class StorageAutoscaling:
    """Grow the volume automatically when free space runs low (RDS storage autoscaling)."""

    max_size: Quantity = field(
        "Upper limit the volume may grow to, like RDS MaxAllocatedStorage. Must be at least storage.size.",
        example="100Gi",
    )
    free_space_threshold_percent: int = field(
        "Grow when free space falls below this share of the volume.", default=10, minimum=5, maximum=50
    )
    increment_percent: int = field(
        "Grow by this share of the current size (at least 5Gi) each time.",
        default=20,
        minimum=10,
        maximum=100,
    )


@model(
    Rule(
        "!has(self.autoscaling) || " + cel.quantity_at_least("self.autoscaling.maxSize", "self.size"),
        "storage.autoscaling.maxSize must be at least storage.size",
        field_path=".autoscaling.maxSize",
    )
)
class Storage:
    """The data volume (a PersistentVolumeClaim per database pod)."""

    size: Quantity = field(
        "Allocated storage, like RDS AllocatedStorage. May grow (the volume is expanded in place "
        "if its StorageClass allows it), never shrink.",
        default="20Gi",
        rules=[
            Rule("isQuantity(self) && quantity(self).isGreaterThan(quantity('1Gi')) || self == '1Gi'",
                 "storage.size must be at least 1Gi"),
            Rule(cel.quantity_at_least("self", "oldSelf"), "storage.size cannot shrink; volumes only grow"),
        ],
    )  # fmt: skip
    storage_class_name: str | None = field(
        "StorageClass of the volumes; the cluster default when omitted. Cannot change.",
        immutable="storage.storageClassName cannot change after creation",
    )
    autoscaling: StorageAutoscaling | None = field("Turns storage autoscaling on. Omit to keep the size fixed.")


@model()
class ObjectStore:
    """An S3-compatible bucket: AWS S3, Ceph RGW, SeaweedFS, MinIO, GCS interoperability."""

    bucket: str = field("Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", max_length=63)
    endpoint: str | None = field(
        "Endpoint URL for a non-AWS store, e.g. http://seaweedfs.storage:8333.",
        pattern=r"^https?://[^\s/]+(/.*)?$",
    )
    region: str = field("Region of the bucket.", default="us-east-1", max_length=64)
    path: str = field(
        "Prefix inside the bucket; kuberds adds <namespace>/<name>/ under it.",
        default="kuberds",
        pattern=r"^[A-Za-z0-9._/-]*$",
    )
    credentials_secret_name: str = field(
        "Secret in the same namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
        pattern=NAME_PATTERN,
    )
    force_path_style: bool = field(
        "Address the bucket as <endpoint>/<bucket> (most non-AWS stores need this).", default=True
    )
    verify_tls: bool = field("Verify the endpoint's TLS certificate.", default=True)
    ca_secret_name: str | None = field(
        "Secret in the same namespace whose key ca.crt holds the CA certificate(s) that signed the endpoint's "
        "certificate (a private CA). Its content may be rotated; kuberds passes it on at its next pass.",
        pattern=NAME_PATTERN,
    )


@model()
class BackupEncryption:
    """Encryption of the backup repository (on by default: an object store is someone else's disk)."""

    enabled: bool = field("Encrypt backups and archived WAL/binlogs before they leave the pod. Cannot change.",
                          default=True,
                          immutable="backup.encryption.enabled cannot change")  # fmt: skip
    key_secret_name: str | None = field(
        "Secret with key `key` holding the passphrase; kuberds generates <name>-backup-key when omitted. "
        "Cannot change (the repository stays readable only with its passphrase).",
        pattern=NAME_PATTERN,
        immutable="backup.encryption.keySecretName cannot change: the repository needs its passphrase",
    )


@model()
class Backup:
    """Automated backups: continuous log archiving plus a daily base backup in the window."""

    retention_days: int = field(
        "Days of point-in-time recoverability to keep, like RDS BackupRetentionPeriod. "
        "0 turns automated backups off. Manual DBSnapshots are never removed by retention.",
        default=7,
        minimum=0,
        maximum=35,
    )
    window: str = field(
        "Daily window for the base backup, HH:MM-HH:MM in UTC, at least 30 minutes, "
        "like RDS PreferredBackupWindow. Must not overlap maintenanceWindow.",
        default="03:00-03:30",
        pattern=cel.DAILY_WINDOW_PATTERN,
        max_length=11,
        rules=[Rule(cel.daily_window_long_enough(), "backup.window must be at least 30 minutes long")],
    )
    object_store: ObjectStore | None = field(
        "Where backups go. Omit to use the object store the operator was installed with. "
        "Cannot change once set (the backups and WAL archive live there).",
        immutable="backup.objectStore cannot change once set: the backups and WAL archive live there",
    )
    encryption: BackupEncryption = field("Repository encryption.", default_factory=BackupEncryption)


@model()
class PointInTime:
    """Restore another instance's data as it was at one moment."""

    source: str = field("Name of the DBInstance or DBCluster (same namespace) to restore from.",
                        pattern=NAME_PATTERN, max_length=63)  # fmt: skip
    time: Timestamp | None = field("The moment to restore to (RFC 3339, UTC), inside the source's retention.")
    latest: bool = field("Restore to the latest restorable time instead of `time`.", default=False)


@model(
    Rule(cel.exactly_one_of("fromSnapshot", "pointInTime"),
         "restore needs exactly one of restore.fromSnapshot or restore.pointInTime"),
    Rule("!has(self.pointInTime) || has(self.pointInTime.time) != self.pointInTime.latest",
         "restore.pointInTime needs exactly one of time or latest: true", field_path=".pointInTime"),
)  # fmt: skip
class Restore:
    """Create this server from a backup. Always into a new server, never over its source."""

    from_snapshot: str | None = field("Name of a DBSnapshot in the same namespace.", pattern=NAME_PATTERN,
                                      max_length=63)  # fmt: skip
    point_in_time: PointInTime | None = field("Point-in-time restore from another server's backups.")


@model()
class Tls:
    """TLS for client connections."""

    enabled: bool = field(
        "Serve TLS. kuberds issues a certificate for the endpoints unless certificateSecretName is given.",
        default=True,
    )
    certificate_secret_name: str | None = field(
        "A kubernetes.io/tls Secret (same namespace) to serve instead of the generated certificate.",
        pattern=NAME_PATTERN,
    )
    require: bool = field("Refuse clients that do not use TLS.", default=False)


@model(
    Rule("self.defaultPoolSize <= self.maxClientConnections",
         "proxy.defaultPoolSize cannot exceed proxy.maxClientConnections", field_path=".defaultPoolSize"),
)  # fmt: skip
class Proxy:
    """A connection pooler in front of the server (PgBouncer; a TCP proxy for MySQL/MariaDB)."""

    enabled: bool = field("Run the proxy and point the <name>-proxy Service at it.", default=False)
    pool_mode: Literal["transaction", "session"] = field(
        "When a server connection returns to the pool (PostgreSQL only).", default="transaction"
    )
    max_client_connections: int = field("Client connections the proxy accepts.", default=1000, minimum=1,
                                        maximum=100000)  # fmt: skip
    default_pool_size: int = field("Server connections per database/user pair.", default=20, minimum=1,
                                   maximum=1000)  # fmt: skip
    replicas: int = field("Proxy pods, spread across zones.", default=2, minimum=1, maximum=10)


@model()
class LabelSelectorRequirement:
    """One label requirement."""

    key: str = field("Label key.", max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = field("How the key relates to the values.")
    values: list[str] = field("Values for In and NotIn.", default_factory=list, max_items=64)


@model()
class LabelSelector:
    """A Kubernetes label selector."""

    match_labels: dict[str, str] = field("Labels that must all match.", default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = field(
        "Requirements that must all hold.", default_factory=list, max_items=16
    )


@model(Rule("has(self.namespaceSelector) || has(self.podSelector)",
            "an allowedClients entry needs namespaceSelector, podSelector or both"))  # fmt: skip
class ClientSelector:
    """Which pods may connect. Both selectors together mean: those pods in those namespaces."""

    namespace_selector: LabelSelector | None = field("Namespaces whose pods may connect.")
    pod_selector: LabelSelector | None = field("Pods that may connect (in this namespace, or in the selected ones).")


@model()
class Network:
    """Who may reach the database port (like a security group). Enforced by a NetworkPolicy."""

    allowed_clients: list[ClientSelector] = field(
        "Clients admitted besides the server's own pods and the proxy. Empty means every pod in this namespace.",
        default_factory=list,
        max_items=16,
    )


@model()
class Toleration:
    """A Kubernetes toleration."""

    key: str | None = field("Taint key; empty with operator Exists matches all taints.", max_length=317)
    operator: Literal["Exists", "Equal"] = field("How key and value are matched.", default="Equal")
    value: str | None = field("Taint value for operator Equal.", max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = field("Taint effect to tolerate.")
    toleration_seconds: int | None = field("For NoExecute: how long the pod stays after the taint.", minimum=0)


@model()
class Scheduling:
    """Where the database pods may run. Zone spread is always applied on top."""

    node_selector: dict[str, str] = field("Node labels the pods require.", default_factory=dict)
    tolerations: list[Toleration] = field("Taints the pods tolerate.", default_factory=list, max_items=16)
    priority_class_name: str | None = field("PriorityClass of the pods.", pattern=NAME_PATTERN)


@model()
class Monitoring:
    """Metrics for Prometheus."""

    enabled: bool = field("Serve engine and agent metrics on port 9187 of each pod.", default=True)


@model()
class Condition:
    """A status condition, as Kubernetes API conventions define it."""

    type: str = field("Condition type: Ready, Available, BackupHealthy, Replicating, StorageResized, Paused, …")
    status: Literal["True", "False", "Unknown"] = field("Status of the condition.")
    reason: str = field("CamelCase reason for the last transition.", default="")
    message: str = field("Human-readable detail.", default="", max_length=4096)
    last_transition_time: Timestamp | None = field("When the status last changed.")
    observed_generation: int | None = field("metadata.generation the condition was computed for.")


@model()
class MemberStatus:
    """One database pod."""

    name: str = field("Pod name.")
    role: str = field("primary, standby, replica, or unknown.", default="unknown")
    zone: str | None = field("Zone of the pod's node.")
    ready: bool = field("Whether the pod is ready to serve.", default=False)


@model()
class StorageStatus:
    """What the volumes look like."""

    requested: Quantity | None = field("Size requested from the PersistentVolumeClaims.")
    allocated: Quantity | None = field("Smallest capacity the volumes actually have.")


# ---------------------------------------------------------------- server kinds


def _common_server_rules() -> tuple[Rule, ...]:
    return (
        Rule(cel.windows_do_not_overlap("self.backup.window", "self.maintenanceWindow"),
             "backup.window must not overlap maintenanceWindow", field_path=".backup.window"),
        Rule("has(self.restore) == has(oldSelf.restore)",
             "restore can only be set when the server is created", field_path=".restore"),
        Rule("has(self.storage.storageClassName) == has(oldSelf.storage.storageClassName)",
             "storage.storageClassName cannot change after creation", field_path=".storage.storageClassName"),
    )  # fmt: skip


@model()
class ServerSpec:
    """Fields DBInstance and DBCluster share (a dataclass base; not a kind of its own)."""

    engine: DBEngine = field("Database engine. Cannot change.", immutable="engine cannot change after creation")
    engine_version: str | None = field(
        "Major version; the newest offered when omitted. Cannot change yet (major upgrades are not offered).",
        max_length=16,
        immutable="engineVersion cannot change yet: major version upgrades are not offered",
    )
    instance_class: InstanceClass = field(
        "Compute and memory, like RDS DBInstanceClass; changing it rolls the pods (standby first).",
        default="db.t3.micro",
    )
    storage: Storage = field("The data volume.", default_factory=Storage)
    database_name: str = field(
        "Database created at bootstrap, like RDS DBName. Cannot change.",
        default="app",
        pattern=IDENTIFIER_PATTERN,
        max_length=63,
        immutable="databaseName cannot change after creation",
    )
    master_username: str = field(
        "Administrative user created at bootstrap, like RDS MasterUsername. Cannot change.",
        default="dbadmin",
        pattern=IDENTIFIER_PATTERN,
        max_length=63,
        immutable="masterUsername cannot change after creation",
        rules=[Rule(f"!(self.lowerAscii() in {RESERVED_USERNAMES!r})",
                    "masterUsername is reserved for kuberds or the engine; choose another name")],
    )  # fmt: skip
    master_user_secret_name: str | None = field(
        "Existing Secret (same namespace) with key `password` for the master user. By default kuberds "
        "generates one into Secret <name>-master and never overwrites it.",
        pattern=NAME_PATTERN,
    )
    port: int | None = field("Port of the endpoints; the engine's usual port when omitted.",
                             minimum=1024, maximum=65535)  # fmt: skip
    parameters: dict[str, str] = field(
        "Engine parameters, like an RDS parameter group (postgresql.conf / my.cnf names). Parameters "
        "kuberds manages itself are refused.",
        default_factory=dict,
        rules=[Rule(f"!self.exists(k, k in {MANAGED_PARAMETERS!r})",
                    "parameters must not set a parameter kuberds manages (archive_command, port, "
                    "synchronous_standby_names, …)")],
    )  # fmt: skip
    backup: Backup = field("Automated backups.", default_factory=Backup)
    maintenance_window: str = field(
        "Weekly window for changes that restart the server, ddd:HH:MM-ddd:HH:MM in UTC, at least "
        "30 minutes, like RDS PreferredMaintenanceWindow.",
        default="sun:05:00-sun:05:30",
        pattern=cel.WEEKLY_WINDOW_PATTERN,
        max_length=19,
        rules=[Rule(cel.weekly_window_long_enough(), "maintenanceWindow must be at least 30 minutes long")],
    )
    deletion_protection: bool = field(
        "Refuse deletion of this object until this is false (enforced by an admission policy).", default=False
    )
    skip_final_snapshot: bool = field(
        "Delete without taking a final DBSnapshot. Volumes are retained either way.", default=False
    )
    final_snapshot_name: str | None = field(
        "Name of the final DBSnapshot; <name>-final-<timestamp> when omitted.", pattern=NAME_PATTERN,
        max_length=63,
    )  # fmt: skip
    automation_paused: bool = field(
        "Stop the operator from changing anything of this server (for hands-on work, as RDS Custom "
        "allows). Status says so.",
        default=False,
    )
    restore: Restore | None = field("Create this server from a snapshot or a point in time.")
    tls: Tls = field("TLS for clients.", default_factory=Tls)
    proxy: Proxy = field("Connection pooling proxy.", default_factory=Proxy)
    network: Network = field("Who may connect.", default_factory=Network)
    scheduling: Scheduling = field("Node placement.", default_factory=Scheduling)
    monitoring: Monitoring = field("Metrics.", default_factory=Monitoring)


@model(*_common_server_rules(), _version_rule(DB_ENGINE_VERSIONS))
class DBInstanceSpec(ServerSpec):
    """A PostgreSQL, MySQL or MariaDB server; multiAZ adds a synchronous standby in another zone."""

    multi_az: bool = field(
        "Run a synchronous standby in another zone behind the same endpoint, like RDS Multi-AZ.",
        default=False,
    )


@model()
class ServerStatus:
    """Observed state of a database server (DBInstance, DBCluster, ReadReplica)."""

    phase: str | None = field(
        "Short summary for printer columns: Creating, Available, Modifying, Degraded, Paused, Deleting, Failed."
    )
    observed_generation: int | None = field("metadata.generation the status was computed for.")
    conditions: list[Condition] = field("Detailed state.", default_factory=list, list_map_keys=("type",))
    engine_version: str | None = field("Engine version running.")
    endpoint: str | None = field("Writer endpoint, host:port (a Service DNS name).")
    reader_endpoint: str | None = field("Reader endpoint, host:port.")
    current_primary: str | None = field("Pod that is the primary now.")
    members: list[MemberStatus] = field("The database pods.", default_factory=list)
    ready_instances: int | None = field("Database pods that are ready (the scale subresource reads it).")
    master_user_secret_name: str | None = field("Secret holding the master user's credentials.")
    certificate_secret_name: str | None = field(
        "Secret with the certificate the endpoints serve; its ca.crt verifies it (sslmode=verify-full)."
    )
    latest_restorable_time: Timestamp | None = field("Latest time a point-in-time restore can reach.")
    earliest_restorable_time: Timestamp | None = field("Earliest time a point-in-time restore can reach.")
    storage: StorageStatus | None = field("Volume sizes.")
    replication_lag_seconds: float | None = field("Lag of the slowest replica (ReadReplica: of itself).")
    final_snapshot: str | None = field("DBSnapshot taken when the server was deleted.")


@model()
class ReaderAutoscaling:
    """Add and remove readers with load, like Aurora Auto Scaling."""

    min_readers: int = field("Fewest readers.", default=1, minimum=0, maximum=15)
    max_readers: int = field("Most readers.", default=3, minimum=1, maximum=15)
    target_cpu_percent: int = field("Average reader CPU utilisation to aim for.", default=70, minimum=10,
                                    maximum=90)  # fmt: skip


@model()
class CustomEndpoint:
    """An extra Service over a chosen set of the cluster's instances (Aurora custom endpoint)."""

    name: str = field("Endpoint name; the Service is <cluster>-<name>.", pattern=NAME_PATTERN, max_length=30)
    type: Literal["READER", "ANY"] = field("READER: only readers; ANY: writer and readers.", default="READER")
    static_members: list[int] = field("Instance ordinals always included (empty: all that match type).",
                                      default_factory=list, max_items=16)  # fmt: skip
    excluded_members: list[int] = field("Instance ordinals never included.", default_factory=list, max_items=16)


def _cluster_spec_rules() -> tuple[Rule, ...]:
    return (
        Rule("!self.zeroDataLoss || self.instances >= 3",
             "zeroDataLoss needs instances >= 3: with two, losing one would block every write",
             field_path=".zeroDataLoss"),
        Rule("!has(self.readerAutoscaling) || self.readerAutoscaling.minReaders <= self.readerAutoscaling.maxReaders",
             "readerAutoscaling.minReaders cannot exceed readerAutoscaling.maxReaders",
             field_path=".readerAutoscaling.minReaders"),
        Rule("!has(self.restore) || !has(self.restore.fromSnapshot) || !has(self.cloneFrom)",
             "set only one of restore and cloneFrom", field_path=".cloneFrom"),
        Rule("has(self.cloneFrom) == has(oldSelf.cloneFrom)",
             "cloneFrom can only be set when the cluster is created", field_path=".cloneFrom"),
    )  # fmt: skip


@model(*_common_server_rules(), *_cluster_spec_rules(), _version_rule(DB_ENGINE_VERSIONS))
class DBClusterSpec(ServerSpec):
    """A writer plus up to 15 readable replicas with writer, reader and custom endpoints (Aurora)."""

    instances: int = field(
        "Database pods: one writer and instances-1 readers, spread across zones.", default=2, minimum=1,
        maximum=16,
    )  # fmt: skip
    zero_data_loss: bool = field(
        "Acknowledge a commit only once a standby has it, and never promote one that may lack it "
        "(synchronous_mode_strict with quorum). Needs instances >= 3.",
        default=False,
    )
    reader_autoscaling: ReaderAutoscaling | None = field("Scale readers with load.")
    custom_endpoints: list[CustomEndpoint] = field(
        "Extra endpoints over chosen instances.", default_factory=list, list_map_keys=("name",), max_items=5
    )
    clone_from: str | None = field(
        "Name of a DBCluster (same namespace) to clone at creation, like an Aurora clone.", pattern=NAME_PATTERN,
        max_length=63,
    )  # fmt: skip


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


@model()
class CacheAuth:
    """Redis AUTH."""

    enabled: bool = field("Require a password (Redis AUTH).", default=True)
    secret_name: str | None = field(
        "Existing Secret with key `password`; kuberds generates <name>-auth when omitted.",
        pattern=NAME_PATTERN,
    )


@model()
class CacheSnapshots:
    """Redis RDB snapshots to object storage, like ElastiCache SnapshotRetentionLimit."""

    retention_days: int = field("Days of daily snapshots to keep; 0 turns them off.", default=0, minimum=0,
                                maximum=35)  # fmt: skip
    window: str = field(
        "Daily window for the snapshot, HH:MM-HH:MM UTC, at least 30 minutes.",
        default="03:00-04:00",
        pattern=cel.DAILY_WINDOW_PATTERN,
        max_length=11,
        rules=[Rule(cel.daily_window_long_enough(), "snapshots.window must be at least 30 minutes long")],
    )
    object_store: ObjectStore | None = field("Where snapshots go; the operator's default store when omitted.")


def _cache_rules() -> tuple[Rule, ...]:
    memcached = "self.engine == 'memcached'"
    return (
        Rule(f"!({memcached}) || self.replicas == 0", "Memcached has no replicas; use numNodes to add shards",
             field_path=".replicas"),
        Rule(f"!({memcached}) || self.snapshots.retentionDays == 0", "Memcached has no backups: "
             "snapshots.retentionDays must be 0", field_path=".snapshots.retentionDays"),
        Rule(f"!({memcached}) || !has(self.auth)", "Memcached has no AUTH; restrict clients with network",
             field_path=".auth"),
        Rule(f"{memcached} || self.numNodes == 1", "numNodes is for Memcached; Redis scales with replicas",
             field_path=".numNodes"),
        Rule("!self.automaticFailover || self.replicas >= 1", "automaticFailover needs at least one replica",
             field_path=".automaticFailover"),
        Rule("!self.multiAZ || self.automaticFailover", "multiAZ needs automaticFailover: true",
             field_path=".multiAZ"),
        Rule(cel.windows_do_not_overlap("self.snapshots.window", "self.maintenanceWindow"),
             "snapshots.window must not overlap maintenanceWindow", field_path=".snapshots.window"),
    )  # fmt: skip


@model(*_cache_rules(), _version_rule(CACHE_ENGINE_VERSIONS))
class CacheClusterSpec:
    """Redis (a primary, replicas and Sentinel failover) or Memcached (sharded nodes), like ElastiCache."""

    engine: CacheEngine = field("Cache engine. Cannot change.", immutable="engine cannot change after creation")
    engine_version: str | None = field("Engine version; the newest offered when omitted.", max_length=16)
    node_type: CacheNodeType = field("Compute and memory of each node.", default="cache.t3.micro")
    replicas: int = field("Redis replicas of the primary.", default=0, minimum=0, maximum=5)
    num_nodes: int = field("Memcached nodes (shards).", default=1, minimum=1, maximum=40)
    automatic_failover: bool = field("Promote a replica when the primary fails (Redis Sentinel).", default=False)
    multi_az: bool = field("Keep the primary and replicas in different zones.", default=False)
    port: int | None = field("Port; the engine's usual port when omitted.", minimum=1024, maximum=65535)
    auth: CacheAuth | None = field("Redis AUTH; on by default for Redis. Not for Memcached.")
    snapshots: CacheSnapshots = field("Redis snapshots.", default_factory=CacheSnapshots)
    parameters: dict[str, str] = field("Engine parameters (redis.conf directives / memcached options).",
                                       default_factory=dict)  # fmt: skip
    maintenance_window: str = field(
        "Weekly maintenance window, ddd:HH:MM-ddd:HH:MM UTC, at least 30 minutes.",
        default="sun:05:00-sun:06:00",
        pattern=cel.WEEKLY_WINDOW_PATTERN,
        max_length=19,
        rules=[Rule(cel.weekly_window_long_enough(), "maintenanceWindow must be at least 30 minutes long")],
    )
    automation_paused: bool = field("Stop the operator from changing anything of this cache.", default=False)
    tls: Tls = field("TLS in transit (Redis).", default_factory=Tls)
    network: Network = field("Who may connect.", default_factory=Network)
    scheduling: Scheduling = field("Node placement.", default_factory=Scheduling)
    monitoring: Monitoring = field("Metrics.", default_factory=Monitoring)


@model()
class CacheClusterStatus:
    """Observed state of a cache."""

    phase: str | None = field("Creating, Available, Modifying, Degraded, Paused, Deleting, Failed.")
    observed_generation: int | None = field("metadata.generation the status was computed for.")
    conditions: list[Condition] = field("Detailed state.", default_factory=list, list_map_keys=("type",))
    engine_version: str | None = field("Engine version running.")
    endpoint: str | None = field("Primary endpoint (Redis) or configuration endpoint (Memcached), host:port.")
    reader_endpoint: str | None = field("Reader endpoint (Redis replicas), host:port.")
    current_primary: str | None = field("Pod that is the Redis primary now.")
    members: list[MemberStatus] = field("The cache pods.", default_factory=list)
    auth_secret_name: str | None = field("Secret holding the AUTH password.")


@model(Rule(cel.exactly_one_of("dbInstance", "dbCluster"), "source needs exactly one of dbInstance or dbCluster"))
class SnapshotSource:
    """The server to snapshot."""

    db_instance: str | None = field("A DBInstance in this namespace.", pattern=NAME_PATTERN, max_length=63)
    db_cluster: str | None = field("A DBCluster in this namespace.", pattern=NAME_PATTERN, max_length=63)


@model(Rule("self == oldSelf", "a DBSnapshot's spec cannot change; create another snapshot"))
class DBSnapshotSpec:
    """A manual snapshot: never removed by automated retention. Deleting the object deletes the backup
    unless deletionPolicy is Retain."""

    source: SnapshotSource = field("The server to snapshot.")
    deletion_policy: Literal["Delete", "Retain"] = field(
        "What happens to the backup in object storage when this object is deleted.", default="Delete"
    )


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
