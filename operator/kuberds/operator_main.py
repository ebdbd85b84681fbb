"""Starts Kopf with every kuberds trigger registered (see kuberds.triggers)."""

from __future__ import annotations

import asyncio
import logging

import kopf


def run_operator(namespaces: list[str], metrics_port: int, health_port: int, verbose: bool) -> int:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO)
    import kuberds.triggers  # noqa: F401  (registers the Kopf handlers on import)
    from kuberds import metrics

    metrics.serve(metrics_port)

    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
            standalone=True,  # one replica for now; peering (leader election) comes with the chart,
        )
    )
    return 0
