"""What the database server kinds share (DBInstance and DBCluster): the spec fields, the rules
across them, and the status."""

from __future__ import annotations

from typing import Literal

from kuberds import engines
from kuberds.api import rules as cel
from kuberds.api.schema import Rule, Timestamp, field, model
from kuberds.api.v1alpha1.backup import Backup, Restore
from kuberds.api.v1alpha1.common import (
    IDENTIFIER_PATTERN,
    MANAGED_PARAMETERS,
    NAME_PATTERN,
    NO_CONTROL_CHARACTERS,
    RESERVED_USERNAMES,
    Condition,
    DBEngine,
    InstanceClass,
    MemberStatus,
    Monitoring,
    Network,
    Scheduling,
    Tls,
)
from kuberds.api.v1alpha1.storage import Storage, StorageStatus


def engine_identifier_rules() -> tuple[Rule, ...]:
    """Each database engine's own rules for user and database names (kuberds.engines)."""
    rules = []
    for info in engines.INFOS.values():
        if info.family != "database":
            continue
        when = f"self.engine != {info.name!r} || "
        if info.max_username_length < 63:
            rules.append(Rule(when + f"self.masterUsername.size() <= {info.max_username_length}",
                              f"{info.name} user names have at most {info.max_username_length} characters",
                              field_path=".masterUsername"))  # fmt: skip
        for prefix in info.reserved_username_prefixes:
            rules.append(Rule(when + f"!self.masterUsername.lowerAscii().startsWith({prefix!r})",
                              f"{info.name} reserves user names starting with {prefix}", field_path=".masterUsername",
                              message_expression=f"'masterUsername ' + self.masterUsername + ': {info.name} reserves "
                                                 f"user names starting with {prefix}'"))  # fmt: skip
        if info.reserved_databases:
            names = list(info.reserved_databases)
            rules.append(Rule(when + f"!(self.databaseName.lowerAscii() in {names!r})",
                              f"{info.name} keeps the databases {', '.join(names)} for itself",
                              field_path=".databaseName",
                              message_expression=f"'databaseName ' + self.databaseName + ' is kept by {info.name} "
                                                 f"for itself ({', '.join(names)})'"))  # fmt: skip
    return tuple(rules)


def engine_parameter_rules(family: str = "database") -> tuple[Rule, ...]:
    """Each engine's allow-list of parameter names (values are judged by the operator)."""
    rules = []
    for info in engines.INFOS.values():
        if info.family != family or info.allowed_parameters is None:
            continue
        allowed = list(info.allowed_parameters)
        rules.append(Rule(
            f"self.engine != {info.name!r} || self.parameters.all(k, k.lowerAscii() in {allowed!r})",
            f"parameters may set only the {info.name} parameters users may set (listed in the API reference)",
            field_path=".parameters",
        ))  # fmt: skip
    return tuple(rules)


def proxy_rule() -> Rule:
    """spec.proxy is offered for the engines that have a proxy (kuberds.engines)."""
    offered = sorted(n for n, i in engines.INFOS.items() if i.proxy)
    return Rule(f"!has(self.proxy) || !self.proxy.enabled || self.engine in {offered!r}",
                f"proxy.enabled: a proxy is offered for {', '.join(offered)} only", field_path=".proxy.enabled",
                message_expression=f"'proxy.enabled: engine ' + self.engine + ' has no proxy yet (offered for "
                                   f"{', '.join(offered)})'")  # fmt: skip


def common_server_rules() -> tuple[Rule, ...]:
    return (
        proxy_rule(),
        *engine_identifier_rules(),
        *engine_parameter_rules(),
        Rule(cel.windows_do_not_overlap("self.backup.window", "self.maintenanceWindow"),
             "backup.window must not overlap maintenanceWindow", field_path=".backup.window",
             message_expression="'backup.window ' + self.backup.window + ' must not overlap maintenanceWindow ' + "
                                "self.maintenanceWindow"),
        Rule("has(self.restore) == has(oldSelf.restore)",
             "restore can only be set when the server is created", field_path=".restore"),
    )  # fmt: skip


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
    reader_endpoint: bool = field(
        "Also run a read-only proxy, <name>-proxy-ro, in front of the reader Service (the standbys).", default=False
    )


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
                    "masterUsername is reserved for kuberds or the engine; choose another name",
                    message_expression="'masterUsername ' + self + ' is reserved for kuberds or the engine; choose "
                                       "another name'")],
    )  # fmt: skip
    master_user_secret_name: str | None = field(
        "Existing Secret (same namespace) with key `password` for the master user. By default kuberds "
        "generates one into Secret <name>-master and never overwrites it.",
        pattern=NAME_PATTERN,
    )
    port: int | None = field("Port of the endpoints; the engine's usual port when omitted.",
                             minimum=1024, maximum=65535)  # fmt: skip
    parameters: dict[str, str] = field(
        "Engine parameters, like an RDS parameter group (postgresql.conf / my.cnf names): only those users may "
        "set, each with its type and range (the API reference lists PostgreSQL's). Parameters kuberds manages "
        "itself are refused.",
        default_factory=dict,
        max_properties=64,
        value_pattern=NO_CONTROL_CHARACTERS,
        value_max_length=1024,
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
        rules=[cel.window_long_enough("maintenanceWindow", weekly=True)],
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


@model()
class ServerStatus:
    """Observed state of a database server (DBInstance, DBCluster, ReadReplica)."""

    phase: str | None = field(
        "Short summary for printer columns: Creating, Available, Modifying, Degraded, StorageFull, Paused, "
        "Deleting, Failed."
    )
    observed_generation: int | None = field("metadata.generation the status was computed for.")
    conditions: list[Condition] = field("Detailed state.", default_factory=list, list_map_keys=("type",))
    engine_version: str | None = field("Engine version running.")
    endpoint: str | None = field("Writer endpoint, host:port (a Service DNS name).")
    reader_endpoint: str | None = field("Reader endpoint, host:port.")
    proxy_endpoint: str | None = field("The proxy's endpoint, host:port, while spec.proxy.enabled.")
    proxy_reader_endpoint: str | None = field("The read-only proxy's endpoint, while spec.proxy.readerEndpoint.")
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
