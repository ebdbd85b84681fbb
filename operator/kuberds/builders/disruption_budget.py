"""A server's PodDisruptionBudget. Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.server import Server


def disruption_budget(server: Server) -> dict:
    # With a standby: one pod at a time. A single pod: a voluntary eviction would be an
    # outage, so none — unless the pod is already unhealthy (then draining it costs nothing).
    budget = {"maxUnavailable": 1} if server.replicas > 1 else {"minAvailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": server.meta(names.disruption_budget(server.name)),
        "spec": {
            **budget,
            "selector": {"matchLabels": server.selector()},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
