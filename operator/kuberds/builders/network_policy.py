"""A server's NetworkPolicy: who may reach which of its ports (like a security group). Pure."""

from __future__ import annotations

from kuberds.api.schema import to_json
from kuberds.builders import names
from kuberds.builders.meta import MANAGED_BY
from kuberds.builders.server import REPLICATION_SOURCE_LABEL, Server

# The operator's pods, as the Helm chart labels them.
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "kuberds", "app.kubernetes.io/component": "operator"}
METRICS_SCRAPER_LABEL = "kuberds.io/metrics-scraper"


def allowed_clients(server: Server) -> list[dict]:
    """The spec's allowed clients as NetworkPolicy peers (none given: this namespace)."""
    return [
        {k: to_json(v) for k, v in (("namespaceSelector", c.namespace_selector), ("podSelector", c.pod_selector))
         if v is not None}
        for c in server.spec.network.allowed_clients
    ] or [{"podSelector": {}}]  # fmt: skip


def _operator_namespace(server: Server) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": server.config.namespace}}}


def operator_pods(server: Server) -> list[dict]:
    """The operator's pods only (the chart's labels), not everything in its namespace."""
    return [{**_operator_namespace(server), "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)}}]


def scrapers(server: Server) -> list[dict]:
    """The operator's namespace and namespaces labelled kuberds.io/metrics-scraper=true."""
    return [_operator_namespace(server), {"namespaceSelector": {"matchLabels": {METRICS_SCRAPER_LABEL: "true"}}}]


def network_policy(server: Server) -> dict:
    """Admits only: the server's own pods (replication, HA API), the operator's pods (HA API:
    the switchover before a rolling update), the proxy, its read replicas, the allowed clients (default: this
    namespace), and metrics scrapes from the operator's namespace or namespaces labelled
    kuberds.io/metrics-scraper=true."""
    layout = server.engine.layout
    peers = [{"podSelector": {"matchLabels": server.selector()}}]
    proxy = [{"podSelector": {"matchLabels": server.owner.selector(c)}} for c in ("proxy", "proxy-reader")]
    # Its read replicas' pods in this namespace stream from it (and seed by base backup).
    replicas = [{"podSelector": {"matchLabels": {**MANAGED_BY, REPLICATION_SOURCE_LABEL: server.name}}}]
    clients, operator = allowed_clients(server), operator_pods(server)

    def port(number: int) -> list[dict]:
        return [{"protocol": "TCP", "port": number}]

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": server.meta(names.network_policy(server.name)),
        "spec": {
            "podSelector": {"matchLabels": server.selector()},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": port(server.port) + port(layout.agent_port)},
                {"from": operator, "ports": port(layout.agent_port)},
                {"from": proxy + replicas + clients, "ports": port(server.port)},
                {"from": scrapers(server), "ports": port(layout.metrics_port)},
            ],
        },
    }
