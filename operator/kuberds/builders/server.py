"""A database server as the builders see it: everything a handler gathered for one pass, so
every builder is a pure function of one value. Endpoint names and the DNS names its
certificate carries are derived here too."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuberds.api import v1alpha1 as api
from kuberds.builders import names
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.settings import BackupPlan, RestorePlan, StandbySource
from kuberds.engines import Engine

DATABASE = "database"  # the app.kubernetes.io/component of a server's pods and objects
# On a read replica's pods: the server it replicates (the source's NetworkPolicy admits them).
REPLICATION_SOURCE_LABEL = "kuberds.io/replication-source"


@dataclass(frozen=True)
class ReplicaOf:
    """What a read replica follows (or followed, once promoted)."""

    description: str  # for status and messages: "DBInstance orders", "db.example.com:5432"
    source_name: str | None = None  # a server in this namespace (None: an external one)
    promoted: bool = False


@dataclass(frozen=True)
class SecretRefs:
    """Secrets the pods read keys from (resolved by the handler)."""

    store_credentials: str | None = None  # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    backup_key: str | None = None  # key
    restore_store_credentials: str | None = None
    restore_key: str | None = None


@dataclass(frozen=True)
class Server:
    """Everything the builders need to know about one server, gathered by the handler."""

    owner: Owner
    spec: api.ServerSpec
    engine: Engine
    config: OperatorConfig
    claim_size: str  # the StatefulSet's claim template size: fixed once created
    master_secret: str  # the Secret holding the master password
    replicas: int = 1  # database pods
    synchronous: bool = False  # a standby confirms every commit (Multi-AZ); its zone must differ
    # Commits wait for a standby even when none is left (three or more members: one can go).
    synchronous_strict: bool = False
    # Placement, fixed per kind (never by the member count: the pod template would change and
    # every pod roll when a cluster scales): members in different zones, required; and on
    # different nodes, required (else preferred: more members than nodes may share one).
    zones_required: bool = False
    hosts_required: bool = True
    backup: BackupPlan | None = None  # None: no object store configured anywhere
    restore: RestorePlan | None = None
    secrets: SecretRefs = field(default_factory=lambda: SecretRefs())
    # A member removed by scaling in leaves no volume behind (a DBCluster reader's copy has no
    # value alone: a new member is seeded from the backups again).
    scale_in_deletes_volumes: bool = False
    # A DBCluster's members' promotion tiers by ordinal (None: a kind without tiers).
    promotion_tiers: tuple[int, ...] | None = None
    # Endpoints over chosen members (a DBCluster's customEndpoints), and how far behind a
    # reader may be and still serve the reader endpoint.
    custom_endpoints: tuple[api.CustomEndpoint, ...] = ()
    reader_max_lag_seconds: float = 30.0
    standby: StandbySource | None = None  # a read replica following its source (None once promoted)
    replica_of: ReplicaOf | None = None  # a read replica, promoted or not

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def port(self) -> int:
        return self.spec.port or self.engine.info.default_port

    @property
    def version(self) -> str:
        return self.spec.engine_version or self.engine.info.default_version

    def labels(self) -> dict[str, str]:
        return self.owner.labels(DATABASE, self.spec.engine, self.version)

    def pod_labels(self) -> dict[str, str]:
        source = self.replica_of.source_name if self.replica_of else None  # kept once promoted: no roll
        return {**self.labels(), **({REPLICATION_SOURCE_LABEL: source} if source else {})}

    def selector(self) -> dict[str, str]:
        return self.owner.selector(DATABASE)

    def meta(self, name: str, **extra: dict) -> dict:
        return self.owner.metadata(name, self.labels(), **extra)

    @property
    def tls_secret(self) -> str | None:
        """The Secret whose tls.crt/tls.key the pods serve (None: no client TLS)."""
        tls = self.spec.tls
        if not tls.enabled:
            return None
        return tls.certificate_secret_name or names.tls_secret(self.name)

    @property
    def issues_certificate(self) -> bool:
        return self.spec.tls.enabled and not self.spec.tls.certificate_secret_name


def database_server(owner: Owner, spec: api.ServerSpec, engine: Engine, config: OperatorConfig, *, claim_size: str,
                    backup: BackupPlan | None = None, restore: RestorePlan | None = None,
                    secrets: SecretRefs | None = None, **shape: object) -> Server:  # fmt: skip
    """A server as every kind's pass hands it over; `shape`: what the kind decides (replicas,
    synchronous commit, tiers, …)."""
    return Server(owner=owner, spec=spec, engine=engine, config=config, claim_size=claim_size,
                  master_secret=spec.master_user_secret_name or names.master_secret(owner.name), backup=backup,
                  restore=restore, secrets=secrets or SecretRefs(), **shape)  # fmt: skip


def writer_endpoint(server: Server) -> str:
    return f"{names.writer_service(server.name)}.{server.owner.namespace}.svc:{server.port}"


def reader_endpoint(server: Server) -> str:
    return f"{names.reader_service(server.name)}.{server.owner.namespace}.svc:{server.port}"


def proxy_endpoint(server: Server, reader: bool = False) -> str:
    name = names.reader_proxy(server.name) if reader else names.proxy(server.name)
    return f"{name}.{server.owner.namespace}.svc:{server.port}"


def endpoint_names(server: Server) -> list[str]:
    """Every DNS name a client may reach the server by: the writer, reader and custom
    endpoints' Services (and the proxy's, which serves the same certificate) and each pod
    through the headless Service, short and fully qualified."""
    namespace, domain = server.owner.namespace, server.config.cluster_domain
    dns = []
    services = [names.writer_service(server.name), names.reader_service(server.name)]
    services += [names.custom_endpoint(server.name, e.name) for e in server.custom_endpoints]
    if server.spec.proxy.enabled:
        services.append(names.proxy(server.name))
        if server.spec.proxy.reader_endpoint:
            services.append(names.reader_proxy(server.name))
    for service in services:
        dns += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{domain}"]
    pods = f"{names.headless_service(server.name)}.{namespace}.svc"
    dns += [f"*.{pods}", f"*.{pods}.{domain}"]
    return dns
