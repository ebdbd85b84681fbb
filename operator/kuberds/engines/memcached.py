"""Memcached (CacheCluster): N nodes that share nothing, a StatefulSet whose stable ordinals
clients hash over, and ElastiCache Auto Discovery through a configuration endpoint served by
every node's agent (kuberds.contract.memcached; the agent: kuberds.agent.memcached)."""

from __future__ import annotations

from collections.abc import Mapping

from kuberds.api.classes import Size
from kuberds.contract.layouts import MEMCACHED, PodLayout
from kuberds.contract.memcached import CacheAgentConfig, discovery_object
from kuberds.contract.settings import BackupPlan, ClientTls, RestorePlan
from kuberds.engines.base import CacheEndpoint, EngineInfo
from kuberds.engines.parameters import Parameter, problems
from kuberds.quantity import to_bytes

# What users may set (ElastiCache's parameter names), with the ranges memcached 1.6 takes.
ALLOWED = {
    p.name: p
    for p in (
        Parameter("max_item_size", "integer", None, 1024, 128 * 2**20),
        Parameter("chunk_size", "integer", None, 16, 1024 * 1024),
        Parameter("chunk_size_growth_factor", "real", None, 1.01, 2.0),
        Parameter("max_simultaneous_connections", "integer", None, 10, 65000),
        Parameter("threads", "integer", None, 1, 64),
        Parameter("cas_disabled", "bool"),
        Parameter("idle_timeout", "integer", None, 0, 86400),
        Parameter("slab_automove", "integer", None, 0, 2),
    )
}
INFO = EngineInfo(
    name="memcached", family="cache", versions=("1.6",), default_port=11211, allowed_parameters=tuple(ALLOWED)
)
SLAB_CHUNK_MAX = 512 * 1024  # memcached 1.6's default slab_chunk_max
# Of the pod's memory, what items may use: the rest is connections' buffers, the hash table
# and the agent (ElastiCache reserves a share of each node's memory the same way).
ITEM_SHARE = 0.8
OVERHEAD_MB = 48


def item_memory_mb(size: Size) -> int:
    return max(16, int(to_bytes(size.memory) / 2**20 * ITEM_SHARE) - OVERHEAD_MB)


def _normalised(parameter: Parameter, value: str) -> str:
    """The value as memcached reads it: no exponents, units or spaces on its command line."""
    text = value.strip()
    if parameter.type == "integer":
        return str(int(float(text)))
    if parameter.type == "real":
        return repr(float(text))
    if parameter.type == "bool":
        return "true" if text.lower() in ("1", "on", "true", "yes") else "false"
    return text


class Memcached:
    info = INFO
    layout: PodLayout = MEMCACHED
    # The configuration endpoint: every node's Auto Discovery port (the agent's).
    endpoints = (CacheEndpoint("configuration", "", "discovery"),)
    agent_port_name = "discovery"
    publishes_membership = True
    auth = False
    snapshots = False
    tls = True
    tls_beside = False  # TLS only (tls.require): port + 1 is the Auto Discovery port

    def members(self, spec) -> int:
        return spec.num_nodes

    @property
    def name(self) -> str:
        return INFO.name

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]:
        found = problems(ALLOWED, user, INFO.name)
        if found:
            return found
        item = next((v for k, v in user.items() if k.lower() == "max_item_size"), None)
        if item is not None and int(float(item)) > SLAB_CHUNK_MAX and int(float(item)) % SLAB_CHUNK_MAX:
            return [f"parameters.max_item_size: {item} above {SLAB_CHUNK_MAX} must be a multiple of it "
                    "(memcached's largest slab chunk)"]  # fmt: skip
        return []

    def spec_problems(self, spec) -> list[str]:
        return self.parameter_problems(spec.parameters)

    def secrets(self, spec) -> list[tuple[str, str]]:
        return []

    def allowed_parameters(self) -> list[Parameter]:
        return list(ALLOWED.values())

    def agent_config(self, cluster: str, namespace: str, port: int, size: Size, spec, members: int = 1,
                     cluster_domain: str = "cluster.local", *, version: str = "",
                     snapshots: BackupPlan | None = None, restore: RestorePlan | None = None,
                     tls: ClientTls | None = None) -> str:  # fmt: skip
        """agent.json; the spec must have passed spec_problems."""
        parameters = {
            name.lower(): _normalised(ALLOWED[name.lower()], value) for name, value in spec.parameters.items()
        }
        return CacheAgentConfig(cluster, namespace, port, item_memory_mb(size), parameters, tls).to_json()

    def probes(self, port: int) -> dict[str, dict]:
        # A node is its memcached process: both probes ask it, nothing else.
        tcp = {"tcpSocket": {"port": port}}
        return {
            "readinessProbe": {**tcp, "periodSeconds": 2, "failureThreshold": 2, "timeoutSeconds": 1},
            "livenessProbe": {**tcp, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2},
        }

    def agent_rules(self, cluster: str, pods: list[str], secrets: list[str] = ()) -> list[dict]:
        """The agent reads its cluster's membership and writes its report on its own pod."""
        return [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
             "resourceNames": [discovery_object(cluster)]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": list(pods)},
        ]  # fmt: skip


ENGINE = Memcached()
