"""The name of every object kuberds makes for a server called `server`: spelled here only.

Services are DNS-1035 labels and pods add "-N", claims "data-" and "-N": the API's
name rules (kuberds.api) keep a server's name short enough for all of them.
"""

from __future__ import annotations

from kuberds.contract.memcached import discovery_object


def writer_service(server: str) -> str:
    """The writer endpoint: routed to the holder of the leader lease (builders.routing)."""
    return server


def custom_endpoint(server: str, endpoint: str) -> str:
    """A DBCluster's custom endpoint (the API refuses endpoint names that collide: ro, pods, …)."""
    return f"{server}-{endpoint}"


def reader_service(server: str) -> str:
    return f"{server}-ro"


def leader_object(server: str) -> str:
    """The HA manager's leader lease (Patroni's Kubernetes DCS: a ConfigMap it keeps)."""
    return f"{server}-leader"


def headless_service(server: str) -> str:
    """Stable DNS names of the pods (replication, the HA API)."""
    return f"{server}-pods"


def proxy(server: str) -> str:
    """The proxy's Deployment, Service (its endpoint), ConfigMap and disruption budget."""
    return f"{server}-proxy"


def reader_proxy(server: str) -> str:
    """The read-only proxy's objects (in front of the reader Service)."""
    return f"{server}-proxy-ro"


def stateful_set(server: str) -> str:
    return server


def pod(server: str, ordinal: int) -> str:
    return f"{stateful_set(server)}-{ordinal}"


def disruption_budget(server: str) -> str:
    return server


def network_policy(server: str) -> str:
    return server


def master_secret(server: str) -> str:
    """Generated master credentials (never overwritten)."""
    return f"{server}-master"


def settings(server: str) -> str:
    """The ConfigMap with agent.json."""
    return f"{server}-settings"


def agent_credentials(server: str) -> str:
    """Superuser, replication and HA-API passwords (generated once, never overwritten)."""
    return f"{server}-agent-credentials"


def backup_key(server: str) -> str:
    """The repository passphrase when none is given: not owned, so it outlives the server."""
    return f"{server}-backup-key"


AGENT_SUFFIX = "-agent"


def agent(server: str) -> str:
    """The in-pod agent's ServiceAccount, Role and RoleBinding (an admission policy spells it too)."""
    return server + AGENT_SUFFIX


def agent_snapshots(server: str) -> str:
    """The Role (and RoleBinding) that lets the agent write its own snapshots' status, by name."""
    return f"{server}{AGENT_SUFFIX}-snapshots"


def ca_secret(server: str) -> str:
    """The server's CA for client TLS (never mounted in pods)."""
    return f"{server}-ca"


def tls_secret(server: str) -> str:
    """The served certificate, its key, and the CA clients verify it with."""
    return f"{server}-tls"


def final_snapshot(server: str, deleted_at: str) -> str:
    """Stable across retries of the finalizer: derived from the deletion timestamp."""
    stamp = deleted_at.replace("-", "").replace(":", "").replace("T", "-").rstrip("Z").lower()
    return f"{server[:40]}-final-{stamp}"


def discovery(cluster: str) -> str:
    """A Memcached cluster's membership (ElastiCache Auto Discovery), read by its agents."""
    return discovery_object(cluster)


def cache_auth(cluster: str) -> str:
    """A Redis cluster's generated AUTH password (made once, never overwritten)."""
    return f"{cluster}-auth"
