"""A ReadReplica's objects: one server of one pod that follows its source (a standby
cluster), the same objects as any server. Pure: what the handler read goes in, the decision
and the objects come out."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders import dbinstance, names
from kuberds.builders import settings as settings_build
from kuberds.builders.meta import Owner
from kuberds.builders.server import DATABASE, ReplicaOf, SecretRefs, Server
from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import environment
from kuberds.contract.settings import BackupPlan, RestorePlan, StandbySource
from kuberds.engines import Engine, engine_for

# The source's credentials a replica copies: the database roles it holds are the source's.
# Its own HA API and proxy-console passwords are generated (the shared pass adds them).
REQUIRED_CREDENTIALS = (environment.SUPERUSER_PASSWORD, environment.REPLICATION_PASSWORD)
INHERITED_CREDENTIALS = (*REQUIRED_CREDENTIALS, environment.REWIND_PASSWORD, environment.PROXY_PASSWORD)


@dataclass(frozen=True)
class Follow:
    """What a replica follows: the source's facts (status.source), and how to stream from it
    (None once promoted)."""

    source: dict  # status.source: kind, name, uid, engine, engineVersion, port, databaseName, masterUsername
    standby: StandbySource | None
    seed: bool = False  # seeded from the source's backups (restore.pointInTime latest)
    promoted: bool = False

    @property
    def description(self) -> str:
        return f"{self.source['kind']} {self.source['name']}"

    @property
    def source_fields(self) -> dict:
        return self.source

    @classmethod
    def remembered(cls, body: dict) -> Follow | None:
        """From status.source alone (status refreshes, drift, deletion); None before the source
        was first seen."""
        source = (body.get("status") or {}).get("source")
        if not source or not source.get("engine"):
            return None
        promoted = bool((body.get("spec") or {}).get("promote"))
        standby = None if promoted else StandbySource(host=source_host(source["name"], body["metadata"]["namespace"]),
                                                      port=source["port"])  # fmt: skip
        return cls(source, standby, seed=bool(source.get("seededFromBackup")), promoted=promoted)


def source_host(source: str, namespace: str) -> str:
    """The source's writer endpoint: its certificate names it."""
    return f"{names.writer_service(source)}.{namespace}.svc"


@dataclass(frozen=True)
class Decision:
    follow: Follow | None = None
    problem: Condition | None = None
    retry_in: float = 30
    source_condition: Condition | None = None  # SourceUnavailable, True or False


def _problem(reason: str, message: str, retry_in: float = 30) -> Decision:
    return Decision(problem=Condition("Reconciled", FALSE, reason, message), retry_in=retry_in)


def _available(name: str) -> Condition:
    return Condition("SourceUnavailable", FALSE, "SourceFound", f"DBInstance {name} exists")


def follow(spec: api.ReadReplicaSpec, body: dict, source: dict | None, source_tls: dict | None,
           siblings: list[tuple[str, str]], config: OperatorConfig,
           kept_standby: StandbySource | None = None) -> Decision:  # fmt: skip
    """Whom the replica follows and how, or why it cannot (yet). `siblings`: the source's
    replicas as (created, name); `kept_standby`: what agent.json said last (a source that is
    gone can no longer say how to reach it)."""
    if spec.source.external:
        return _problem("SourceKindNotSupported", "source.external: replicas of external servers are not offered "
                        "yet; use source.dbInstance")  # fmt: skip
    if spec.source.db_cluster:
        return _problem("SourceKindNotSupported", f"source.dbCluster {spec.source.db_cluster}: DBCluster is not "
                        "offered yet, so it cannot be a source; use source.dbInstance")  # fmt: skip
    meta = body["metadata"]
    remembered = Follow.remembered(body)
    if remembered and kept_standby and remembered.standby:
        remembered = Follow(remembered.source, kept_standby, remembered.seed, remembered.promoted)
    name = spec.source.db_instance
    replaced = source is not None and remembered and remembered.source.get("uid") != source["metadata"]["uid"]
    if source is None or replaced:
        if remembered is None:
            return _problem("SourceNotFound", f"source.dbInstance {name} is not a DBInstance in this namespace")
        why = (f"DBInstance {name} was deleted and made again: a new database the replica cannot follow"
               if replaced else f"DBInstance {name} is gone")  # fmt: skip
        if remembered.promoted:
            unavailable = Condition("SourceUnavailable", FALSE, "Promoted", f"{why}; promoted, this server follows "
                                    "no source")  # fmt: skip
        else:
            unavailable = Condition("SourceUnavailable", TRUE, "SourceReplaced" if replaced else "SourceDeleted",
                                    f"{why}; the replica keeps serving reads as of its last replay")  # fmt: skip
        return Decision(follow=remembered, source_condition=unavailable)
    source_spec = parse(api.DBInstanceSpec, source.get("spec"))
    engine = engine_for(source_spec.engine)
    if engine is None or not engine.read_replicas:
        return _problem("EngineNotSupported", f"DBInstance {name} runs {source_spec.engine}, whose replicas are "
                        "not offered yet")  # fmt: skip
    if remembered is None and not _within_limit(meta["name"], meta.get("creationTimestamp", ""), siblings):
        return _problem("TooManyReplicas", f"DBInstance {name} has {api.MAX_REPLICAS_PER_SOURCE} read replicas "
                        "already (the limit per source, as RDS's); delete one or replicate a replica's source "
                        "elsewhere", retry_in=20)  # fmt: skip
    version = source_spec.engine_version or engine.info.default_version
    facts = {
        "kind": "DBInstance",
        "name": name,
        "uid": source["metadata"]["uid"],
        "engine": source_spec.engine,
        "engineVersion": version,
        "port": source_spec.port or engine.info.default_port,
        "databaseName": source_spec.database_name,
        "masterUsername": source_spec.master_username,
    }
    if remembered and (remembered.source["engine"], remembered.source["engineVersion"]) != (facts["engine"], version):
        return _problem("SourceMismatch", f"DBInstance {name} runs {facts['engine']} {version}, this replica "
                        f"{remembered.source['engine']} {remembered.source['engineVersion']}")  # fmt: skip
    # Decided once (the first pass records it): the pod's restore settings must not change
    # under it when the source's backups come or go, or the pod would be replaced.
    store = settings_build.object_store(source_spec, config)
    seed = (
        remembered.seed
        if remembered
        else (store is not None and bool((source.get("status") or {}).get("latestRestorableTime")))
    )
    facts["seededFromBackup"] = seed
    standby = None
    if not spec.promote:
        ssl_mode, ca = source_ssl(source_spec, source_tls)
        standby = StandbySource(host=source_host(name, meta["namespace"]), port=facts["port"], ssl_mode=ssl_mode,
                                ca_bundle=ca, seed_from_backup=seed)  # fmt: skip
    return Decision(follow=Follow(facts, standby, seed, spec.promote), source_condition=_available(name))


def _within_limit(name: str, created: str, siblings: list[tuple[str, str]]) -> bool:
    """The oldest replicas of a source are within the limit (a replica already made stays)."""
    ahead = sorted(s for s in siblings if s != (created, name) and s < (created, name))
    return len(ahead) < api.MAX_REPLICAS_PER_SOURCE


def source_ssl(source_spec: api.DBInstanceSpec, tls_secret: dict | None) -> tuple[str, str | None]:
    """How the replica's leader connects to its source: verified by name with the source's CA
    when it serves TLS and the CA is known; TLS unverified when it is not; plain (prefer)
    when the source serves no TLS."""
    if not source_spec.tls.enabled:
        return "prefer", None
    encoded = ((tls_secret or {}).get("data") or {}).get("ca.crt")
    ca = base64.b64decode(encoded).decode() if encoded else None
    return ("verify-full", ca) if ca else ("require", None)


def server_spec(spec: api.ReadReplicaSpec, follow: Follow) -> api.DBInstanceSpec:
    """The replica as a server: the source's engine, version, port, database and master user;
    its own class, storage, parameters, TLS, network, placement and (once promoted) backups."""
    source = follow.source
    restore = api.Restore(point_in_time=api.PointInTime(source=source["name"], latest=True)) if follow.seed else None
    return api.DBInstanceSpec(
        engine=source["engine"],
        engine_version=source["engineVersion"],
        instance_class=spec.instance_class,
        storage=spec.storage,
        database_name=source["databaseName"],
        master_username=source["masterUsername"],
        port=source["port"],
        parameters=spec.parameters,
        backup=spec.backup,
        deletion_protection=spec.deletion_protection,
        skip_final_snapshot=spec.skip_final_snapshot,
        automation_paused=spec.automation_paused,
        restore=restore,
        tls=spec.tls,
        network=spec.network,
        scheduling=spec.scheduling,
        monitoring=spec.monitoring,
    )


def replica_server(owner: Owner, spec: api.ServerSpec, engine: Engine, config: OperatorConfig, *, follow: Follow,
                   claim_size: str, backup: BackupPlan | None = None, restore: RestorePlan | None = None,
                   secrets: SecretRefs | None = None) -> Server:  # fmt: skip
    """One pod: its leader follows the source until promoted. Its backup repository is its
    own, used once it is promoted."""
    server = dbinstance.instance_server(owner, spec, engine, config, claim_size=claim_size, backup=backup,
                                        restore=restore, secrets=secrets)  # fmt: skip
    replica_of = ReplicaOf(follow.description, follow.source["name"], promoted=follow.promoted)
    return replace(server, standby=follow.standby, replica_of=replica_of)


server_objects = dbinstance.server_objects


def inherited_secrets(owner: Owner, follow: Follow, source_master: dict | None, source_credentials: dict | None,
                      existing: dict[str, bool]) -> tuple[list[dict], list[str]]:  # fmt: skip
    """Copies of the source's master and database-role passwords the replica lacks (made once,
    never overwritten, as every generated credential), and the replica's Secrets that cannot
    be made yet (the source's are missing: nothing may be generated in their place)."""
    labels = owner.labels(DATABASE, follow.source["engine"], follow.source["engineVersion"])
    made, waiting = [], []
    master_name, credentials_name = names.master_secret(owner.name), names.agent_credentials(owner.name)
    password = ((source_master or {}).get("data") or {}).get(environment.MASTER_PASSWORD.key)
    if not existing.get(master_name) and password:
        made.append(_secret(owner.metadata(master_name, labels), "kubernetes.io/basic-auth",
                            {"username": _b64(follow.source["masterUsername"]),
                             environment.MASTER_PASSWORD.key: password}))  # fmt: skip
    elif not existing.get(master_name):
        waiting.append(master_name)
    data = (source_credentials or {}).get("data") or {}
    inherited = {var.key: data[var.key] for var in INHERITED_CREDENTIALS if var.key in data}
    complete = all(var.key in inherited for var in REQUIRED_CREDENTIALS)
    if not existing.get(credentials_name) and complete:
        made.append(_secret(owner.metadata(credentials_name, labels), "Opaque", inherited))
    elif not existing.get(credentials_name):
        waiting.append(credentials_name)
    return made, waiting


def _secret(meta: dict, kind: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": kind, "data": data}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
