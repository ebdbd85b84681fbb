"""A CacheCluster as the builders see it: its spec read once (ports, Secrets, TLS, snapshots),
and what derives from it alone (endpoints, certificate names, where snapshots go). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.api import v1alpha1 as api
from kuberds.api.classes import CACHE_NODE_TYPES, Size
from kuberds.api.schema import parse
from kuberds.builders import names, settings
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract import TLS_CA_FILE, TLS_DIR
from kuberds.contract.redis import tls_port_beside
from kuberds.contract.settings import BackupPlan, ClientTls, RestorePlan
from kuberds.engines import CacheEngine
from kuberds.engines.base import CacheEndpoint

CACHE = "cache"  # the app.kubernetes.io/component of a cache's pods and objects


@dataclass(frozen=True)
class Cache:
    owner: Owner
    spec: api.CacheClusterSpec
    engine: CacheEngine
    config: OperatorConfig
    store_ca: str | None = None  # the PEM in the snapshot store's caSecretName (read by the handler)
    restore: RestorePlan | None = None  # resolved from restore.fromSnapshot by the handler
    restore_credentials: str | None = None  # the snapshot's store keys (a Secret of this namespace)
    restore_key_secret: str | None = None  # the snapshot's passphrase

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def tls_secret(self) -> str | None:
        """The Secret with the certificate the members serve (None: no TLS)."""
        tls = self.spec.tls
        if not self.engine.tls or not tls.enabled or not (tls.require or self.engine.tls_beside):
            return None
        return tls.certificate_secret_name or names.tls_secret(self.name)

    @property
    def issues_certificate(self) -> bool:
        return self.tls_secret is not None and self.tls_secret == names.tls_secret(self.name)

    @property
    def client_tls(self) -> ClientTls | None:
        if self.tls_secret is None:
            return None
        return ClientTls(TLS_DIR, self.spec.tls.require, f"{TLS_DIR}/{TLS_CA_FILE}")

    @property
    def tls_port(self) -> int | None:
        """Where TLS is served: the port itself with tls.require, else the next one beside it."""
        if self.tls_secret is None:
            return None
        return self.port if self.spec.tls.require else tls_port_beside(self.port)

    @property
    def extra_tls_port(self) -> int | None:
        """The TLS port when it is a port of its own (beside plain TCP)."""
        return self.tls_port if self.tls_port != self.port else None

    @property
    def snapshot_store(self) -> api.ObjectStore | None:
        return snapshot_store(self.spec, self.config) if self.engine.snapshots else None

    @property
    def snapshot_key_secret(self) -> str | None:
        return snapshot_key_secret(self.name, self.spec)

    @property
    def generates_snapshot_key(self) -> bool:
        return self.snapshot_store is not None and self.snapshot_key_secret == names.backup_key(self.name)

    @property
    def snapshot_plan(self) -> BackupPlan | None:
        store = self.snapshot_store
        if store is None:
            return None
        snapshots = self.spec.snapshots
        repository = settings.repository(self.owner, store, snapshots.encryption.enabled, self.store_ca)
        return BackupPlan(repository, snapshots.retention_days, snapshots.window)

    @property
    def port(self) -> int:
        return self.spec.port or self.engine.info.default_port

    @property
    def version(self) -> str:
        return self.spec.engine_version or self.engine.info.default_version

    @property
    def nodes(self) -> int:
        """Pods: Memcached's nodes, or Redis's primary and replicas."""
        return self.engine.members(self.spec)

    @property
    def auth_secret(self) -> str | None:
        """The Secret with the AUTH password the pods use (None: no AUTH)."""
        auth = self.spec.auth
        if not self.engine.auth or (auth is not None and not auth.enabled):
            return None
        return (auth.secret_name if auth else None) or names.cache_auth(self.name)

    @property
    def generates_auth(self) -> bool:
        return self.auth_secret == names.cache_auth(self.name)

    @property
    def size(self) -> Size:
        return CACHE_NODE_TYPES[self.spec.node_type]

    def labels(self) -> dict[str, str]:
        return self.owner.labels(CACHE, self.spec.engine, self.version)

    def selector(self) -> dict[str, str]:
        return self.owner.selector(CACHE)

    def meta(self, name: str, **extra: dict) -> dict:
        return self.owner.metadata(name, self.labels(), **extra)

    def node_host(self, ordinal: int) -> str:
        """A node's stable DNS name, fully qualified (clients outside the namespace resolve it)."""
        pods = names.headless_service(self.name)
        return f"{names.pod(self.name, ordinal)}.{pods}.{self.owner.namespace}.svc.{self.config.cluster_domain}"


def snapshot_store(spec: api.CacheClusterSpec, config: OperatorConfig) -> api.ObjectStore | None:
    return settings.chosen_store(spec.snapshots.object_store, config)


def snapshot_key_secret(name: str, spec: api.CacheClusterSpec) -> str | None:
    return settings.passphrase_secret(name, spec.snapshots.encryption)


def snapshot_repository(source: dict, config: OperatorConfig) -> dict | None:
    """For a DBSnapshot of a cache: where its RDB goes, recorded on the snapshot (restores read
    it after the cluster is gone). None: the cluster has no store."""
    spec = parse(api.CacheClusterSpec, source.get("spec"))
    store = snapshot_store(spec, config)
    if store is None:
        return None
    repository = settings.repository(Owner.of(source), store, spec.snapshots.encryption.enabled)
    return api.SnapshotRepository(store=store, path=repository.path, stanza=repository.stanza,
                                  encrypted=repository.encrypted,
                                  key_secret_name=snapshot_key_secret(source["metadata"]["name"], spec))  # fmt: skip


def endpoint_address(cache: Cache, endpoint: CacheEndpoint) -> str:
    return f"{cache.name}{endpoint.suffix}.{cache.owner.namespace}.svc:{cache.port}"


def endpoint_fields(cache: Cache) -> dict:
    """status.endpoint (primary or configuration endpoint), readerEndpoint, and tlsPort."""
    field = {"primary": "endpoint", "configuration": "endpoint", "reader": "readerEndpoint"}
    return {**{field[e.kind]: endpoint_address(cache, e) for e in cache.engine.endpoints}, "tlsPort": cache.tls_port}


def dns_names(cache: Cache) -> list[str]:
    """Every name a client may reach a member by, for its certificate: the endpoints' Services
    and each pod through the headless Service, short and fully qualified."""
    namespace, domain = cache.owner.namespace, cache.config.cluster_domain
    dns = []
    for service in [cache.name + e.suffix for e in cache.engine.endpoints]:
        dns += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{domain}"]
    pods = f"{names.headless_service(cache.name)}.{namespace}.svc"
    return [*dns, f"*.{pods}", f"*.{pods}.{domain}"]
