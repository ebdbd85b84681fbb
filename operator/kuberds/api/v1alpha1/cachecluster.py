"""CacheCluster: Redis with replicas and automatic failover, or sharded Memcached (ElastiCache)."""

from __future__ import annotations

from kuberds import engines
from kuberds.api import rules as cel
from kuberds.api.kinds import Kind, server_name_rules
from kuberds.api.schema import Rule, field, model
from kuberds.api.v1alpha1.backup import BackupEncryption, ObjectStore
from kuberds.api.v1alpha1.common import (
    NAME_PATTERN,
    CacheEngine,
    CacheNodeType,
    Condition,
    MemberStatus,
    Monitoring,
    Network,
    Scheduling,
    Tls,
    version_rule,
)
from kuberds.api.v1alpha1.server import engine_parameter_rules


@model(
    Rule("!(self.name in ['default', 'kuberds'])", "auth.users: the name is kept by Redis or kuberds",
         field_path=".name", message_expression="'auth.users: ' + self.name + ' is kept by Redis or kuberds; "
                                                "choose another name'"),
)  # fmt: skip
class CacheUser:
    """A Redis ACL user (like an ElastiCache RBAC user): its access rules and password Secret,
    applied on every member and kept in sync."""

    name: str = field("User name.", pattern=r"^[a-z][a-z0-9_-]*$", max_length=32)
    access: str = field(
        "ACL rules in Redis ACL SETUSER syntax, space separated: key patterns (`~app:*`, `%R~cache:*`, "
        "`allkeys`), channels (`&events:*`, `allchannels`), commands and categories (`+@read`, `-@all`, "
        "`+get`, `+client|setname`). Passwords, `on`/`off`, `reset` and selectors are not allowed: the password "
        "comes from passwordSecretName. Commands of the @dangerous category stay refused unless allowDangerous.",
        default="~* +@read",
        max_length=1024,
        pattern=r"^[^\x00-\x1f\x7f]*$",
    )
    password_secret_name: str = field("Secret (same namespace) with key `password`.", pattern=NAME_PATTERN)
    allow_dangerous: bool = field("Let this user run @dangerous commands (FLUSHALL, CONFIG, KEYS, …).",
                                  default=False)  # fmt: skip


@model()
class CacheAuth:
    """Redis AUTH and ACL users."""

    enabled: bool = field("Require a password (Redis AUTH). Cannot be turned off.", default=True)
    secret_name: str | None = field(
        "Existing Secret with key `password`; kuberds generates <name>-auth when omitted.",
        pattern=NAME_PATTERN,
    )
    users: list[CacheUser] = field("ACL users besides the default one.", default_factory=list,
                                   list_map_keys=("name",), max_items=20)  # fmt: skip


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
        rules=[cel.window_long_enough("snapshots.window", weekly=False)],
    )
    object_store: ObjectStore | None = field(
        "Where snapshots (daily and DBSnapshots) go; the operator's default store when omitted. Cannot change "
        "once set (the snapshots live there).",
        immutable="snapshots.objectStore cannot change once set: the snapshots live there",
    )
    encryption: BackupEncryption = field("Snapshot encryption (AES-256-GCM, on by default).",
                                         default_factory=BackupEncryption)  # fmt: skip


@model()
class CacheRestore:
    """Create this cluster from an RDB snapshot (into a new cluster, never over its source)."""

    from_snapshot: str = field("Name of an Available DBSnapshot of a Redis CacheCluster in this namespace.",
                               pattern=NAME_PATTERN, max_length=63)  # fmt: skip


def _cache_rules() -> tuple[Rule, ...]:
    memcached = "self.engine == 'memcached'"
    return (
        Rule(f"!({memcached}) || self.replicas == 0", "Memcached has no replicas; use numNodes to add shards",
             field_path=".replicas"),
        Rule(f"!({memcached}) || self.snapshots.retentionDays == 0", "Memcached has no backups: "
             "snapshots.retentionDays must be 0", field_path=".snapshots.retentionDays"),
        Rule(f"!({memcached}) || !has(self.auth)", "Memcached has no AUTH; restrict clients with network",
             field_path=".auth"),
        Rule(f"{memcached} || !has(self.auth) || self.auth.enabled", "auth.enabled: Redis members authenticate "
             "each other with it, so it cannot be turned off", field_path=".auth.enabled"),
        Rule(f"!({memcached}) || !has(self.restore)", "Memcached has no snapshots to restore from",
             field_path=".restore"),
        Rule(f"{memcached} || self.numNodes == 1", "numNodes is for Memcached; Redis scales with replicas",
             field_path=".numNodes"),
        Rule("!self.automaticFailover || self.replicas >= 1", "automaticFailover needs at least one replica",
             field_path=".automaticFailover"),
        Rule("!self.multiAZ || self.automaticFailover", "multiAZ needs automaticFailover: true",
             field_path=".multiAZ"),
        Rule(cel.windows_do_not_overlap("self.snapshots.window", "self.maintenanceWindow"),
             "snapshots.window must not overlap maintenanceWindow", field_path=".snapshots.window",
             message_expression="'snapshots.window ' + self.snapshots.window + ' must not overlap "
                                "maintenanceWindow ' + self.maintenanceWindow"),
    )  # fmt: skip


@model(*_cache_rules(), *engine_parameter_rules("cache"), version_rule(engines.versions("cache")))
class CacheClusterSpec:
    """Redis (a primary, replicas and automatic failover) or Memcached (sharded nodes), like ElastiCache."""

    engine: CacheEngine = field("Cache engine. Cannot change.", immutable="engine cannot change after creation")
    engine_version: str | None = field("Engine version; the newest offered when omitted.", max_length=16)
    node_type: CacheNodeType = field("Compute and memory of each node.", default="cache.t3.micro")
    replicas: int = field("Redis replicas of the primary.", default=0, minimum=0, maximum=5)
    num_nodes: int = field("Memcached nodes (shards).", default=1, minimum=1, maximum=40)
    automatic_failover: bool = field(
        "Promote a replica when the primary fails (decided by the members' agents over a Lease). When false, "
        "no replica promotes itself: a failed primary is waited for, and one that restarts empty is primary "
        "again, the replicas resyncing from it (its data is lost, as ElastiCache does). A clean stop still "
        "hands over.",
        default=False,
    )
    multi_az: bool = field("Keep the primary and replicas in different zones.", default=False)
    port: int | None = field("Port; the engine's usual port when omitted.", minimum=1024, maximum=65535)
    auth: CacheAuth | None = field("Redis AUTH; on by default for Redis. Not for Memcached.")
    snapshots: CacheSnapshots = field("Redis snapshots.", default_factory=CacheSnapshots)
    restore: CacheRestore | None = field("Start from a snapshot's data. Cannot change.",
                                         immutable="restore cannot change: a cluster is restored once, "
                                                   "when it is created")  # fmt: skip
    parameters: dict[str, str] = field("Engine parameters (redis.conf directives / memcached options).",
                                       default_factory=dict)  # fmt: skip
    maintenance_window: str = field(
        "Weekly maintenance window, ddd:HH:MM-ddd:HH:MM UTC, at least 30 minutes.",
        default="sun:05:00-sun:06:00",
        pattern=cel.WEEKLY_WINDOW_PATTERN,
        max_length=19,
        rules=[cel.window_long_enough("maintenanceWindow", weekly=True)],
    )
    automation_paused: bool = field("Stop the operator from changing anything of this cache.", default=False)
    tls: Tls = field(
        "TLS in transit (Redis; replication too): on the port itself with require, else on the next "
        "port beside plain TCP. Memcached: not offered yet.",
        default_factory=Tls,
    )
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
    tls_port: int | None = field("The endpoints' TLS port: their own port with tls.require, the next one beside it "
                                 "without; unset when TLS is off.")  # fmt: skip
    current_primary: str | None = field("Pod that is the Redis primary now.")
    members: list[MemberStatus] = field("The cache pods.", default_factory=list)
    auth_secret_name: str | None = field("Secret holding the AUTH password.")


KIND = Kind(
    "CacheCluster", "cacheclusters", ("cc", "cache"), CacheClusterSpec, CacheClusterStatus,
    (("Engine", "string", ".spec.engine", 0), ("Version", "string", ".status.engineVersion", 0),
     ("Node Type", "string", ".spec.nodeType", 1), ("Status", "string", ".status.phase", 0),
     ("Endpoint", "string", ".status.endpoint", 0), ("Age", "date", ".metadata.creationTimestamp", 0)),
    object_rules=server_name_rules(),
)  # fmt: skip
