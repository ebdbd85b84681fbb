"""What the operator tells the agent, and what the pod gives it. The contract between them.

The operator renders `AgentConfig` (pure: `kuberds.builders.agent`) into the `NAME-settings`
ConfigMap as `agent.json`; the pod mounts it at /etc/kuberds. Secrets never go there: they
arrive as environment variables from Secret references (`Credentials`). `Pod` is what the
pod itself supplies (downward API) plus paths and ports, which tests override to run
several members on one host.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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
    """One server's backup location: a prefix in a bucket, holding a pgBackRest stanza."""

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
class ClientTls:
    """Serve TLS to clients with tls.crt/tls.key from `directory` (a mounted Secret)."""

    directory: str
    require: bool = False  # refuse TCP clients that do not use TLS


@dataclass(frozen=True)
class HaTiming:
    """Patroni's clock. loop_wait + 2 * retry_timeout must not exceed ttl (Patroni's rule)."""

    ttl: int = 6
    loop_wait: int = 1
    retry_timeout: int = 2


@dataclass(frozen=True)
class AgentConfig:
    scope: str  # the server's name: Patroni's cluster name
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
    ha: HaTiming = field(default_factory=HaTiming)
    tls: ClientTls | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        return _build(cls, json.loads(text))


def _build(cls: type[T], data: Any) -> T:
    """Dataclass from asdict() output (nested dataclasses and optional ones)."""
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    nested = {
        "store": ObjectStoreTarget,
        "repository": Repository,
        "backup": BackupPlan,
        "restore": RestorePlan,
        "ha": HaTiming,
        "tls": ClientTls,
    }
    values = {}
    for name, value in data.items():
        if name not in hints:
            continue  # a newer operator may add fields; an older agent ignores them
        values[name] = _build(nested[name], value) if name in nested and value is not None else value
    return cls(**values)


# The user the HA API asks for on requests that change something (switchover, restart).
AGENT_API_USER = "kuberds"


def basic_auth(password: str | None) -> dict[str, str]:
    """The header for the HA API's unsafe endpoints (none when no password is set)."""
    if not password:
        return {}
    token = base64.b64encode(f"{AGENT_API_USER}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Credentials:
    """Secrets, from environment variables the StatefulSet fills from Secret references."""

    superuser_password: str
    replication_password: str
    master_password: str
    api_password: str | None = None  # the HA API's unsafe endpoints; None leaves them open
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    cipher_pass: str | None = None
    restore_s3_access_key: str | None = None
    restore_s3_secret_key: str | None = None
    restore_cipher_pass: str | None = None

    @classmethod
    def from_environment(cls, env: dict[str, str]) -> Credentials:
        def get(name: str) -> str | None:
            return env.get(f"KUBERDS_{name}") or None

        return cls(
            superuser_password=env["KUBERDS_SUPERUSER_PASSWORD"],
            replication_password=env["KUBERDS_REPLICATION_PASSWORD"],
            master_password=env["KUBERDS_MASTER_PASSWORD"],
            api_password=get("AGENT_API_PASSWORD"),
            s3_access_key=get("BACKUP_ACCESS_KEY_ID"),
            s3_secret_key=get("BACKUP_SECRET_ACCESS_KEY"),
            cipher_pass=get("BACKUP_CIPHER_PASS"),
            restore_s3_access_key=get("RESTORE_ACCESS_KEY_ID"),
            restore_s3_secret_key=get("RESTORE_SECRET_ACCESS_KEY"),
            restore_cipher_pass=get("RESTORE_CIPHER_PASS"),
        )


@dataclass(frozen=True)
class Pod:
    """The member this agent is: identity from the downward API; paths and ports default to
    the image's layout and can be overridden (tests run several members on one host)."""

    name: str
    namespace: str
    ip: str
    config_dir: Path = Path("/etc/kuberds")
    data_dir: Path = Path("/var/lib/postgresql/data/pgdata")
    run_dir: Path = Path("/var/run/postgresql")
    listen_address: str = "0.0.0.0"
    agent_port: int = 8008
    metrics_port: int = 9187
    postgres_port: int | None = None  # the server's port when None
    engine_user: str | None = None  # drop to this OS user for the engine (tests run as root)
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    kube_context: str | None = None  # a kubeconfig context outside a pod (Patroni defaults to kind's)
    memory_limit_bytes: int | None = None  # this container's limit (downward API)

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Pod:
        env = dict(os.environ if env is None else env)
        defaults = cls(name="", namespace="", ip="")

        def path(name: str, default: Path) -> Path:
            return Path(env[name]) if env.get(name) else default

        def port(name: str, default: int | None) -> int | None:
            return int(env[name]) if env.get(name) else default

        return cls(
            name=env["POD_NAME"],
            namespace=env["POD_NAMESPACE"],
            ip=env.get("POD_IP") or "127.0.0.1",
            config_dir=path("KUBERDS_CONFIG_DIR", defaults.config_dir),
            data_dir=path("KUBERDS_DATA_DIR", defaults.data_dir),
            run_dir=path("KUBERDS_RUN_DIR", defaults.run_dir),
            listen_address=env.get("KUBERDS_LISTEN_ADDRESS") or defaults.listen_address,
            agent_port=port("KUBERDS_AGENT_PORT", defaults.agent_port),
            metrics_port=port("KUBERDS_METRICS_PORT", defaults.metrics_port),
            postgres_port=port("KUBERDS_POSTGRES_PORT", None),
            engine_user=env.get("KUBERDS_ENGINE_USER") or None,
            bin_dir=path("KUBERDS_BIN_DIR", defaults.bin_dir),
            kube_context=env.get("KUBERDS_KUBE_CONTEXT") or None,
            memory_limit_bytes=port("KUBERDS_MEMORY_LIMIT", None),
        )
