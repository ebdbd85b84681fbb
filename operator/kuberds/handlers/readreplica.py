"""ReadReplica: an asynchronous replica of a DBInstance with its own endpoint (RDS read
replica); `promote: true` detaches it into a standalone writable server.

A replica is a server of one pod whose HA manager follows the source as a standby cluster:
seeded from the source's newest backup (else a base backup from the source), streaming
from the source's writer endpoint, the source's archive as fallback. It holds the source's
users, so its credentials are copies of the source's, made once: the replica keeps working
when the source goes. What it learned of the source is kept in status.source.

Thin: each function is one trigger's work in kuberds.triggers, over the shared operations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders import names
from kuberds.builders import readreplica as build
from kuberds.builders.meta import Owner
from kuberds.builders.server import Server
from kuberds.config import OperatorConfig
from kuberds.contract import PRIMARY, ROLE_LABEL, SETTINGS_FILE
from kuberds.contract.settings import AgentConfig, StandbySource
from kuberds.engines import engine_for
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import agents, ownership, rollout, server_pass
from kuberds.operations.secrets import not_reconciled
from kuberds.operations.status import post_event, publish_status

KIND = "ReadReplica"
# (namespace, source kind, source name) → the replicas of that source, as (created, name).
ReplicasOf = Callable[[str, str, str], list[tuple[str, str]]]


def spec_of(body: dict) -> api.ReadReplicaSpec:
    return shared.spec_of(api.ReadReplicaSpec, body)


def source_of(body: dict) -> tuple[str, str | None]:
    """(kind, name) of the server in this namespace that the replica follows."""
    source = (body.get("spec") or {}).get("source") or {}
    if source.get("dbCluster"):
        return "DBCluster", source["dbCluster"]
    return "DBInstance", source.get("dbInstance")


@dataclass(frozen=True)
class SourceSeen:
    """What one pass read of the source: the object and the Secrets the replica copies."""

    body: dict | None = None
    master: dict | None = None
    credentials: dict | None = None
    tls: dict | None = None


def _read_source(kube: Kube, namespace: str, spec: api.ReadReplicaSpec) -> SourceSeen:
    if not spec.source.db_instance:
        return SourceSeen()
    body = kube.get("DBInstance", namespace, spec.source.db_instance)
    if body is None:
        return SourceSeen()
    source_spec = parse(api.DBInstanceSpec, body.get("spec"))
    name = body["metadata"]["name"]
    master = kube.get("Secret", namespace, source_spec.master_user_secret_name or names.master_secret(name))
    credentials = kube.get("Secret", namespace, names.agent_credentials(name))
    tls_name = source_spec.tls.certificate_secret_name or names.tls_secret(name)
    tls = kube.get("Secret", namespace, tls_name) if source_spec.tls.enabled else None
    return SourceSeen(body, master, credentials, tls)


class Builders:
    """The ReadReplica's side of the shared server pass (operations.server_pass.ServerKind),
    for one pass: what it follows is known before the pass runs."""

    def __init__(self, follow: build.Follow):
        self.follow = follow

    def server(self, owner, spec, engine, config, **kwargs) -> Server:
        return build.replica_server(owner, spec, engine, config, follow=self.follow, **kwargs)

    @staticmethod
    def objects(server: Server) -> list[dict]:
        return build.server_objects(server)


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str],
              replicas_of: ReplicasOf) -> None:  # fmt: skip
    """Follow (or, promoted, stop following) the source; then the shared server pass."""
    spec, meta = spec_of(body), body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if spec.automation_paused:
        server_pass.publish_paused(kube, body)
        return
    seen = _read_source(kube, namespace, spec)
    kind, source = source_of(body)
    siblings = replicas_of(namespace, kind, source) if source else []
    kept = _kept_standby(kube, namespace, name) if seen.body is None else None
    decision = build.follow(spec, body, seen.body, seen.tls, siblings, config, kept)
    if decision.problem:
        publish_status(kube, body, [decision.problem, server_pass.ACTIVE])
        raise kopf.TemporaryError(decision.problem.message, delay=min(decision.retry_in, config.retry_seconds))
    follow = decision.follow
    if follow.source_fields != (body.get("status") or {}).get("source"):
        body = {**body, "status": publish_status(kube, body, [], {"source": follow.source_fields})}
    owner = Owner.of(body)
    made, waiting = build.inherited_secrets(owner, follow, seen.master, seen.credentials,
                                            _existing(kube, namespace, name))  # fmt: skip
    for secret in made:
        ownership.confirm(owner, kube.create(secret))
        post_event(body, "Normal", "CredentialsCopied", message=f"Secret {secret['metadata']['name']} holds "
                   f"{follow.description}'s credentials: the replica has its users")  # fmt: skip
    if waiting:
        problem = not_reconciled("SourceNotReady", f"waiting for {follow.description}'s credentials (the replica's "
                                 f"{', '.join(waiting)} are copies of them)")  # fmt: skip
        publish_status(kube, body, [problem, server_pass.ACTIVE])
        raise kopf.TemporaryError(problem.message, delay=10)
    conditions = [decision.source_condition] if decision.source_condition else []
    builders = Builders(follow)
    server_pass.run(kube, config, builders, body, build.server_spec(spec, follow), pods, zones, conditions)
    if spec.promote:
        _promote(kube, body, follow, pods)


def source_gone(kube: Kube, config: OperatorConfig, body: dict) -> None:
    """The source was deleted: the replica says so now (its next full pass keeps serving)."""
    decision = build.follow(spec_of(body), body, None, None, [], config)
    if decision.source_condition:
        publish_status(kube, body, [decision.source_condition])


def _kept_standby(kube: Kube, namespace: str, name: str) -> StandbySource | None:
    """How agent.json last said to reach the source (its CA): a source that is gone cannot say."""
    text = ((kube.get("ConfigMap", namespace, names.settings(name)) or {}).get("data") or {}).get(SETTINGS_FILE)
    return AgentConfig.from_json(text).standby if text else None


def _existing(kube: Kube, namespace: str, name: str) -> dict[str, bool]:
    return {s: kube.get("Secret", namespace, s) is not None
            for s in (names.master_secret(name), names.agent_credentials(name))}  # fmt: skip


def _promote(kube: Kube, body: dict, follow: build.Follow, pods: list[dict]) -> None:
    """Tells the replica's leader to stop following at once. agent.json says so too, and the
    agent promotes when the kubelet hands it the changed ConfigMap (a minute or so later):
    this only saves that minute, so a leader not running now is left to the agent."""
    status = body.get("status") or {}
    if status.get("promotedAt"):
        return
    server = _known_server(None, body, None, follow)
    leader = next((p for p in pods if (p["metadata"].get("labels") or {}).get(ROLE_LABEL)
                   == server.engine.role_label_values[PRIMARY]), None)  # fmt: skip
    ip = ((leader or {}).get("status") or {}).get("podIP")
    if not ip:
        return
    password = rollout.agent_api_password(kube, server.owner.namespace, server.name)
    try:
        agents.send(ip, server.engine.layout.agent_port, server.engine.promote_replica(), password,
                    tls=rollout.agent_tls(kube, server, leader))  # fmt: skip
    except agents.AgentError as error:
        raise kopf.TemporaryError(f"promote: {error}", delay=30) from error
    told_before = any(c.get("type") == "Replicating" and c.get("reason") == "Promoting"
                      for c in status.get("conditions", []))  # fmt: skip
    if not told_before:
        post_event(body, "Normal", "Promoting", message=f"stopped following {follow.description}: promoting")


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    """A replica's volume is retained, as every server's; no final snapshot (the schema keeps
    skipFinalSnapshot true: DBSnapshots of replicas are not offered yet)."""
    post_event(body, "Normal", "DeletedWithoutFinalSnapshot", message="a read replica; its volume is retained")
    ownership.forget(Owner.of(body))


def _known_server(config: OperatorConfig | None, body: dict, stateful_set: dict | None,
                  follow: build.Follow | None = None) -> Server | None:  # fmt: skip
    """The server for status and drift, from what status.source remembers of the source;
    None when kuberds leaves it alone now (or has not seen the source yet)."""
    spec = spec_of(body)
    follow = follow or build.Follow.remembered(body)
    if follow is None or spec.automation_paused or body["metadata"].get("deletionTimestamp"):
        return None
    server_spec = build.server_spec(spec, follow)
    if engine_for(server_spec.engine) is None:
        return None
    return server_pass.known_server(Builders(follow), body, server_spec, config or OperatorConfig(), stateful_set)


def refresh(kube: Kube, config: OperatorConfig, namespace: str, name: str, read: rollout.Read) -> str:
    """Members or the lease changed: the shared refresh, over a body that knows its source."""

    def read_with_source() -> rollout.Members:
        return with_remembered_source(read(), lambda: kube.get(KIND, namespace, name))

    return shared.refresh(KIND, _known_server, kube, config, namespace, name, read_with_source)


def with_remembered_source(seen: rollout.Members, read_body: Callable[[], dict | None]) -> rollout.Members:
    """The index's copy of a replica may predate the write of status.source: Kopf indexes an
    object's events only between its handlers, and the first pass makes the pods before it ends.
    Their events would then find the replica "not known yet", and no event may follow them
    (kwok's pods are ready at once): such a copy is read afresh, once per refresh."""
    if seen.body is None or build.Follow.remembered(seen.body) is not None:
        return seen
    return replace(seen, body=read_body() or seen.body)


check_storage = functools.partial(shared.check_storage, KIND, _known_server)
correct_drift = functools.partial(shared.correct_drift, _known_server, build.server_objects)
