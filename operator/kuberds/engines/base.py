"""What an engine is to the operator: a catalog entry every engine has, and the data-plane
interface of those that run.

`EngineInfo` is what the API offers (versions, the usual port, names the engine reserves,
parameters kuberds sets itself). `Engine` says what its pods look like to Kubernetes and how
the operator talks to their agents. Contract:
- methods are pure (no I/O) and deterministic for the same inputs;
- `parameters()` returns the engine's configuration as name → string, user parameters
  applied last (the schema has already refused the ones kuberds manages);
- `probes(api_tls)` must not make the kubelet kill a healthy primary because the API server
  is unreachable: liveness checks the local process only; with `api_tls` the agent serves
  its HA API over TLS (kuberds issued the server's certificate), so the probes ask HTTPS;
- `role_label_values` maps kuberds' roles (contract.PRIMARY / REPLICA) to the values the
  engine's HA manager writes in contract.ROLE_LABEL; the Services select on them;
- `switchover()` describes the request to the primary's agent that hands the primary role to
  `candidate` and answers 2xx only once it has happened (the operator sends it);
- `proxy` is the engine's pooling proxy, or None when it has none yet (the API refuses
  `proxy.enabled` then); its configuration file is a pure function of PoolSettings, and
  `max_connections` says how many server connections the proxies may share;
- `backups`, `read_replicas`, `clusters` say what it offers beyond a DBInstance; the operator
  answers the others with EngineNotSupported naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kuberds.api.classes import Size
from kuberds.contract.layouts import PodLayout, ProxyLayout
from kuberds.contract.settings import BackupPlan, ClientTls, RestorePlan
from kuberds.engines.parameters import Parameter

Family = Literal["database", "cache"]


@dataclass(frozen=True)
class EngineInfo:
    name: str
    family: Family
    versions: tuple[str, ...]  # newest first; the first is the default. What Debian bookworm packages.
    default_port: int
    reserved_usernames: tuple[str, ...] = ()  # users the engine or its tooling owns
    managed_parameters: tuple[str, ...] = ()  # set by kuberds itself: a user's value would break HA or backups
    # Identifier rules the engine itself enforces, refused by the API before a bootstrap fails.
    max_username_length: int = 63
    reserved_username_prefixes: tuple[str, ...] = ()
    reserved_databases: tuple[str, ...] = ()
    # The parameters users may set, lower-case (None: no allow-list yet; managed_parameters
    # are refused then). The schema refuses others; the engine judges the values.
    allowed_parameters: tuple[str, ...] | None = None
    proxy: str | None = None  # the pooling proxy the engine offers (spec.proxy), if any
    not_offered: str = ""  # why an engine the API accepts has no data plane (EngineNotSupported says it)

    @property
    def default_version(self) -> str:
        return self.versions[0]


@dataclass(frozen=True)
class AgentRequest:
    """An HTTP request to a pod's agent port; the engine describes it, the operator sends it."""

    method: str
    path: str
    body: dict = field(default_factory=dict)


class Proxy(Protocol):
    name: str
    layout: ProxyLayout

    def config(self, settings) -> dict[str, str]:
        """The proxy's configuration files by name (settings: the proxy's PoolSettings)."""

    def pool_problem(self, default_pool_size: int, max_connections: int) -> str | None:
        """Why a pool of this size cannot be served by a server of `max_connections` (None: it can)."""

    def share_per_pod(self, max_connections: int, replicas: int) -> int:
        """Server connections each of `replicas` proxy pods may hold."""


class Engine(Protocol):
    info: EngineInfo
    layout: PodLayout
    role_label_values: Mapping[str, str]
    proxy: Proxy | None
    # What the engine's data plane offers beyond a DBInstance (EngineNotSupported otherwise):
    backups: bool  # backups to the object store, snapshots, restores
    read_replicas: bool  # ReadReplicas of its DBInstances
    clusters: bool  # DBClusters (readers, promotion tiers)
    leader_kind: str  # the kind of the leader object NAME-leader the writer endpoint follows (ConfigMap, Lease)

    @property
    def name(self) -> str: ...

    def parameters(self, size: Size, user: dict[str, str], volume: str | None = None) -> dict[str, str]:
        """The engine's parameters: sized from the instance class (and the data volume, when
        given), the user's allowed ones on top."""

    def max_connections(self, size: Size, user: dict[str, str]) -> int:
        """Client connections the server accepts with these parameters."""

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]:
        """One line per user parameter the engine refuses, naming it (empty: all fine)."""

    def allowed_parameters(self) -> list[Parameter]:
        """The parameters users may set, for the API reference."""

    def probes(self, api_tls: bool) -> dict[str, dict]: ...

    def agent_rules(self, server: str, pods: list[str]) -> list[dict]: ...

    def switchover(self, leader: str, candidate: str) -> AgentRequest: ...

    def restart_member(self) -> AgentRequest:
        """Sent to a replica: restart its engine (it reconnects; the writer meanwhile picks
        another synchronous standby among the replicas still streaming)."""
        ...

    def promote_replica(self) -> AgentRequest:
        """Sent to a read replica's leader: stop following the source, become writable."""


@dataclass(frozen=True)
class CacheEndpoint:
    """A Service clients reach a cache by."""

    kind: str  # primary, reader, configuration: the status field it fills
    suffix: str  # after the cluster's name ("" for the cluster's own name)
    target_port: str  # the pods' port, by name
    role: str | None = None  # only pods the agents labelled with this role (contract.ROLE_LABEL)


class CacheEngine(Protocol):
    """A cache engine's data plane (CacheCluster). Pure, like Engine: `agent_config` is the
    member's agent.json from the node type and the user's parameters (which must have passed
    `parameter_problems`); `probes(port)` ask the engine's process only; `agent_rules` are
    the agent's rights, limited to the cluster's own objects by name; `endpoints` are the
    Services over its pods; `publishes_membership`: the operator keeps the Auto Discovery
    membership ConfigMap the agents serve; `auth`: clients authenticate with the password of
    spec.auth's Secret, which the pods get."""

    info: EngineInfo
    layout: PodLayout
    endpoints: tuple[CacheEndpoint, ...]
    agent_port_name: str
    publishes_membership: bool
    auth: bool
    tls: bool  # serves TLS (with a certificate kuberds issues or the user's)
    tls_beside: bool  # TLS on a port of its own beside plain TCP without tls.require (else TLS only with it)
    snapshots: bool  # RDB snapshots to the object store, restores from them (engine data that outlives memory)

    @property
    def name(self) -> str: ...

    def members(self, spec) -> int:
        """Pods of a CacheCluster with this spec."""

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]: ...

    def spec_problems(self, spec) -> list[str]:
        """One line per value of the spec the engine refuses (parameters, ACL rules), naming its field."""

    def secrets(self, spec) -> list[tuple[str, str]]:
        """The Secrets the spec names for the pods' agents (name, the field naming it)."""

    def allowed_parameters(self) -> list[Parameter]: ...

    def agent_config(
        self,
        cluster: str,
        namespace: str,
        port: int,
        size: Size,
        spec,
        members: int,
        cluster_domain: str,
        *,
        version: str = "",
        snapshots: BackupPlan | None = None,
        restore: RestorePlan | None = None,
        tls: ClientTls | None = None,
    ) -> str:
        """agent.json; the spec must have passed spec_problems. `snapshots`/`restore` only where
        the engine has `snapshots`, `tls` where it has `tls`."""

    def probes(self, port: int) -> dict[str, dict]: ...

    def agent_rules(self, cluster: str, pods: list[str], secrets: list[str] = ()) -> list[dict]: ...
