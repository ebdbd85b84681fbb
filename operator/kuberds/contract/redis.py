"""Redis between the operator and the agent of each member: agent.json, the leader Lease the
agents decide over, and what the agent writes on pods (the role label the primary and reader
endpoints select on). Pure.

The HA decision is the agents': the primary's agent holds a coordination.k8s.io Lease
(`NAME-leader`) and renews it every second; when it lapses, the replica with the most data
among those reachable takes it and promotes itself, and moves the role labels at once (so
the primary endpoint follows in the time the endpoints controller takes). See
kuberds.agent.redis.decide for the rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kuberds import codec
from kuberds.contract.settings import BackupPlan, ClientTls, RestorePlan

LEASE_SECONDS = 5  # a primary whose agent has not renewed for this long is replaced
# A primary refuses writes when no replica acknowledged for this long: shorter than the
# lease, so a primary cut off from its replicas stops taking writes before one is promoted.
MIN_REPLICAS_MAX_LAG = 4


def lease_name(cluster: str) -> str:
    return f"{cluster}-leader"


def tls_port_beside(port: int) -> int:
    """TLS beside plain TCP: the next port (6380 for Redis's 6379)."""
    return port + 1


def member_host(cluster: str, ordinal: int, namespace: str, domain: str = "cluster.local") -> str:
    return f"{cluster}-{ordinal}.{cluster}-pods.{namespace}.svc.{domain}"


@dataclass(frozen=True)
class AclUser:
    """An ACL user of the spec, as the agents apply it (rules judged by the operator)."""

    name: str
    access: str
    password_secret: str  # key `password`; the agent reads it through the API
    allow_dangerous: bool = False


def acl_setuser(user: AclUser, password: str) -> list[str]:
    """The ACL SETUSER arguments: from nothing (reset), on, the password, the user's rules,
    the @dangerous commands refused after them unless allowed, and @admin (replication,
    REPLICAOF, ACL, CONFIG) always: the agents' HA rests on those."""
    dangerous = [] if user.allow_dangerous else ["-@dangerous"]
    return [user.name, "reset", "on", f">{password}", *user.access.split(), *dangerous, "-@admin"]


@dataclass(frozen=True)
class RedisAgentConfig:
    """agent.json of a Redis member."""

    cluster: str
    namespace: str
    port: int
    members: int  # the primary and its replicas
    maxmemory_mb: int
    parameters: dict[str, str] = field(default_factory=dict)  # allowed redis.conf directives, judged
    cluster_domain: str = "cluster.local"
    lease_seconds: int = LEASE_SECONDS
    users: list[AclUser] = field(default_factory=list)
    engine_version: str = ""
    automatic_failover: bool = True  # false: no replica promotes itself when the primary's lease lapses
    # RDB snapshots: daily in the window when retention_days > 0, and DBSnapshots at any time;
    # None: no object store. The keys and the passphrase come as env (environment.BACKUP_STORE).
    snapshots: BackupPlan | None = None
    # Member 0 of a new cluster loads this snapshot before it first starts (environment.RESTORE_STORE).
    restore: RestorePlan | None = None
    # TLS with the files in `tls.directory` (tls.crt, tls.key, ca.crt), replication too. With
    # tls.require the port serves TLS only; without, TLS is served on port + 1 beside it.
    tls: ClientTls | None = None

    def to_json(self) -> str:
        return json.dumps(codec.encode(self, codec.same, omit_none=False), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RedisAgentConfig:
        return codec.decode(cls, json.loads(text), codec.same)

    def host(self, ordinal: int) -> str:
        return member_host(self.cluster, ordinal, self.namespace, self.cluster_domain)

    @property
    def tls_port(self) -> int | None:
        """Where TLS is served (and where replicas connect); None: no TLS."""
        if self.tls is None:
            return None
        return self.port if self.tls.require else tls_port_beside(self.port)

    @property
    def plain_port(self) -> int | None:
        """Where plain TCP is served; None: TLS only."""
        return None if self.tls is not None and self.tls.require else self.port

    @property
    def min_replicas_to_write(self) -> int:
        """With replicas, a primary takes writes only while one of them keeps up."""
        return 1 if self.members > 1 else 0
