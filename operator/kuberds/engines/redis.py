"""Redis (CacheCluster): a primary and up to five replicas, the members' agents deciding who is
primary over a Kubernetes Lease (kuberds.contract.redis; the agent: kuberds.agent.redis), the
primary and reader endpoints following the role label the agents move."""

from __future__ import annotations

import re
from collections.abc import Mapping

from kuberds.api.classes import Size
from kuberds.contract import PRIMARY, REPLICA
from kuberds.contract.layouts import REDIS, PodLayout
from kuberds.contract.redis import AclUser, RedisAgentConfig, lease_name
from kuberds.contract.settings import BackupPlan, ClientTls, RestorePlan
from kuberds.engines.base import CacheEndpoint, EngineInfo
from kuberds.engines.parameters import Parameter, problems
from kuberds.quantity import to_bytes

EVICTION_POLICIES = (
    "volatile-lru",
    "allkeys-lru",
    "volatile-lfu",
    "allkeys-lfu",
    "volatile-random",
    "allkeys-random",
    "volatile-ttl",
    "noeviction",
)
# redis.conf directives users may set (ElastiCache's modifiable ones that are safe here).
ALLOWED = {
    p.name: p
    for p in (
        Parameter("maxmemory-policy", "enum", values=EVICTION_POLICIES),
        Parameter("maxmemory-samples", "integer", None, 1, 64),
        Parameter("timeout", "integer", None, 0, 86400),
        Parameter("tcp-keepalive", "integer", None, 0, 3600),
        Parameter("lazyfree-lazy-eviction", "bool"),
        Parameter("lazyfree-lazy-expire", "bool"),
        Parameter("activedefrag", "bool"),
        Parameter("hz", "integer", None, 1, 500),
        Parameter("slowlog-log-slower-than", "integer", None, -1, 10_000_000),
        Parameter("slowlog-max-len", "integer", None, 0, 100_000),
        Parameter("list-max-listpack-size", "integer", None, -5, 100_000),
    )
}
INFO = EngineInfo(name="redis", family="cache", versions=("7.0",), default_port=6379,
                  allowed_parameters=tuple(ALLOWED))  # fmt: skip
# Of the pod's memory, what the dataset may use: the rest is replication buffers, a fork's
# copy-on-write during a snapshot, and the agent (ElastiCache reserves 25% the same way).
DATASET_SHARE = 0.7
OVERHEAD_MB = 32


def maxmemory_mb(size: Size) -> int:
    return max(32, int(to_bytes(size.memory) / 2**20 * DATASET_SHARE) - OVERHEAD_MB)


# ACL categories of Redis 7.0 (ACL CAT).
CATEGORIES = frozenset({"all", "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
                        "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
                        "connection", "transaction", "scripting"})  # fmt: skip
# The ACL rules a spec may give: key, channel and command rules. Not passwords (they come from
# a Secret), on/off, reset or selectors: kuberds writes those itself.
RULE = re.compile(
    r"^(?:(?:%(?:R|W|RW))?~[^\s()]+|&[^\s()]+|allkeys|resetkeys|allchannels|resetchannels|allcommands"
    r"|nocommands|[+-]@(?P<category>[a-z]+)|[+-][a-z][a-z0-9_-]*(?:\|[a-z][a-z0-9_-]*)?)$"
)


def _normalised(parameter: Parameter, value: str) -> str:
    """The value as redis.conf reads it: yes/no for booleans, plain integers."""
    text = value.strip()
    if parameter.type == "bool":
        return "yes" if text.lower() in ("1", "on", "true", "yes") else "no"
    if parameter.type == "integer":
        return str(int(float(text)))
    return text.lower() if parameter.type == "enum" else text


def access_problems(users) -> list[str]:
    """One line per ACL rule refused, naming the user's field."""
    found = []
    for i, user in enumerate(users):
        for token in user.access.split():
            match = RULE.match(token)
            if match is None:
                found.append(f"auth.users[{i}].access: {token!r} is not a key, channel or command rule")
            elif match.group("category") and match.group("category") not in CATEGORIES:
                found.append(f"auth.users[{i}].access: {token!r} names no ACL category of Redis "
                             f"{INFO.default_version}")  # fmt: skip
    return found


class Redis:
    info = INFO
    layout: PodLayout = REDIS
    # The primary endpoint follows the role label the agents move; the reader one, replicas.
    endpoints = (CacheEndpoint("primary", "", "redis", PRIMARY), CacheEndpoint("reader", "-ro", "redis", REPLICA))
    agent_port_name = "agent"
    publishes_membership = False
    auth = True
    snapshots = True
    tls = True
    tls_beside = True  # 6380 beside 6379 unless tls.require

    @property
    def name(self) -> str:
        return INFO.name

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]:
        return problems(ALLOWED, user, INFO.name)

    def spec_problems(self, spec) -> list[str]:
        return self.parameter_problems(spec.parameters) + access_problems(spec.auth.users if spec.auth else [])

    def secrets(self, spec) -> list[tuple[str, str]]:
        """Users' Secrets the spec names, with the field naming each."""
        users = spec.auth.users if spec.auth else []
        return [(u.password_secret_name, f"auth.users[{i}].passwordSecretName") for i, u in enumerate(users)]

    def allowed_parameters(self) -> list[Parameter]:
        return list(ALLOWED.values())

    def members(self, spec) -> int:
        return spec.replicas + 1

    def agent_config(self, cluster: str, namespace: str, port: int, size: Size, spec, members: int = 1,
                     cluster_domain: str = "cluster.local", *, version: str = "",
                     snapshots: BackupPlan | None = None, restore: RestorePlan | None = None,
                     tls: ClientTls | None = None) -> str:  # fmt: skip
        parameters = {
            name.lower(): _normalised(ALLOWED[name.lower()], value) for name, value in spec.parameters.items()
        }
        users = [AclUser(u.name, u.access, u.password_secret_name, u.allow_dangerous)
                 for u in (spec.auth.users if spec.auth else [])]  # fmt: skip
        return RedisAgentConfig(cluster, namespace, port, members, maxmemory_mb(size), parameters, cluster_domain,
                                users=users, engine_version=version, snapshots=snapshots,
                                automatic_failover=spec.automatic_failover,
                                restore=restore, tls=tls).to_json()  # fmt: skip

    def probes(self, port: int) -> dict[str, dict]:
        # Ready: the primary holding the lease, or a replica streaming from it (the agent
        # knows); alive: the process answers on its port, whatever the lease says.
        return {
            "readinessProbe": {"httpGet": {"path": "/ready", "port": REDIS.agent_port}, "periodSeconds": 1,
                               "failureThreshold": 2, "timeoutSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 10, "failureThreshold": 3,
                              "timeoutSeconds": 2},
        }  # fmt: skip

    def agent_rules(self, cluster: str, pods: list[str], secrets: list[str] = ()) -> list[dict]:
        """The members' agents keep the leader Lease (`create` cannot be limited by name:
        Kubernetes checks names only of existing objects), the role labels and reports of the
        cluster's own pods, and read the ACL users' password Secrets by name; nothing else."""
        read = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": sorted(set(secrets))}]
        return [*(read if secrets else []),
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
             "resourceNames": [lease_name(cluster)]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": list(pods)},
            # DBSnapshots of the cluster (their status: builders.rbac.snapshot_grant, by name).
            {"apiGroups": ["kuberds.io"], "resources": ["dbsnapshots"], "verbs": ["get", "list", "watch"]},
        ]  # fmt: skip


ENGINE = Redis()
