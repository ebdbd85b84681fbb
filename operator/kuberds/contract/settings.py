"""agent.json: what the operator tells a server's agents.

The operator renders `AgentConfig` (kuberds.builders.settings, pure) into the NAME-settings
ConfigMap; each pod mounts it read-only at contract.CONFIG_DIR. Secrets never go here: they
arrive as environment variables from Secret references (kuberds.contract.environment).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kuberds import codec


@dataclass(frozen=True)
class ObjectStoreTarget:
    bucket: str
    endpoint: str | None = None  # URL; None means AWS S3 in `region`
    region: str = "us-east-1"
    force_path_style: bool = True
    verify_tls: bool = True
    ca_bundle: str | None = None  # PEM of a private CA (public data: agent.json may carry it)


@dataclass(frozen=True)
class Repository:
    """One server's backup location: a prefix in a bucket, named `stanza` by the backup tool."""

    store: ObjectStoreTarget
    path: str  # /<prefix>/<namespace>/<name>/<uid>: the uid keeps a re-created name apart
    stanza: str
    encrypted: bool = True


@dataclass(frozen=True)
class BackupPlan:
    repository: Repository
    retention_days: int = 7  # 0: no automated backups (snapshots still work)
    window: str = "03:00-03:30"  # UTC


@dataclass(frozen=True)
class RestorePlan:
    """Bootstrap this server from another one's repository (never into the source)."""

    repository: Repository
    snapshot_set: str | None = None  # a snapshot's backup label (in the snapshots repository)
    target_time: str | None = None  # RFC 3339; None with a snapshot, or for "latest"

    @property
    def from_snapshot(self) -> bool:
        return self.snapshot_set is not None


@dataclass(frozen=True)
class StandbySource:
    """Follow another server as a read replica (a standby cluster): its leader streams from
    `host`, is seeded from the restore plan's repository (the source's backups) when there
    is one, else by a base backup from the source, and falls back to its archive."""

    host: str
    port: int
    # How the replica's leader connects to the source: libpq sslmode, and the CA that signed
    # the source's certificate (PEM: public data) when the mode verifies it.
    ssl_mode: str = "prefer"
    ca_bundle: str | None = None
    seed_from_backup: bool = True  # the restore plan's repository has backups to seed from


@dataclass(frozen=True)
class ClientTls:
    """Serve TLS to clients with tls.crt/tls.key from `directory` (a mounted Secret)."""

    directory: str
    require: bool = False  # refuse TCP clients that do not use TLS
    ca_file: str | None = None  # the CA that signed the members' certificates (kuberds issued them)


@dataclass(frozen=True)
class HaTiming:
    """The HA manager's clock. loop_wait + 2 * retry_timeout must not exceed ttl (Patroni's rule).

    ttl is what a dead or frozen primary costs before a standby may take the lease (measured on
    a frozen node: the lease taken ttl + 2.1-2.7 s after the freeze: up to loop_wait of the
    standby's own cycle, then Patroni's fixed 2 s wait on the old leader's API). 5 s meets the
    rule exactly; a primary still demotes itself after retry_timeout without the API server,
    and a standby with a stale view cannot take the lease (the API server refuses its write),
    so a shorter ttl adds no split brain."""

    ttl: int = 5
    loop_wait: int = 1
    retry_timeout: int = 2


@dataclass(frozen=True)
class AgentConfig:
    scope: str  # the server's name: the HA manager's cluster name
    namespace: str
    port: int
    engine_version: str
    instances: int
    scope_label: str  # the pod label whose value is `scope`
    labels: dict[str, str]  # the other labels that select the server's pods
    role_label: str
    synchronous: bool = False
    synchronous_strict: bool = False
    memory_limit: str | None = None  # the instance class's memory: pods with another limit get replaced
    parameters: dict[str, str] = field(default_factory=dict)
    master_username: str = "postgres"
    database_name: str = "postgres"
    backup: BackupPlan | None = None
    restore: RestorePlan | None = None
    standby: StandbySource | None = None  # a read replica until promoted (then None)
    ha: HaTiming = field(default_factory=HaTiming)
    tls: ClientTls | None = None
    kind: str = "DBInstance"  # the server's kind: the source field its DBSnapshots name it by

    def to_json(self) -> str:
        return json.dumps(codec.encode(self, codec.same, omit_none=False), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        return codec.decode(cls, json.loads(text), codec.same)
