"""Starts Kopf with every kuberds trigger registered (see kuberds.triggers)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tracemalloc

import kopf


def run_operator(namespaces: list[str], metrics_port: int, health_port: int, verbose: bool) -> int:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO)
    if not verbose:  # Kopf logs every handler run at INFO: thousands of lines an hour
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    import kuberds.triggers  # noqa: F401  (registers the Kopf handlers on import)
    from kuberds import metrics

    metrics.serve(metrics_port)
    if os.environ.get("KUBERDS_TRACEMALLOC"):
        _trace_memory()

    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
            standalone=True,  # one replica (the chart runs one, Recreate); no Kopf peering needed
        )
    )
    return 0


def _trace_memory() -> None:
    """Diagnostics: with KUBERDS_TRACEMALLOC=1, SIGUSR1 prints the top allocation sites."""
    tracemalloc.start(8)

    def dump(*_: object) -> None:
        snapshot = tracemalloc.take_snapshot()
        total = sum(stat.size for stat in snapshot.statistics("filename"))
        print(f"traced Python memory: {total / 2**20:.1f} MiB; by file:", file=sys.stderr)
        for stat in snapshot.statistics("filename")[:12]:
            print(f"  {stat.size / 2**20:.1f} MiB {stat.traceback.format()[-1].strip()}", file=sys.stderr)
        for stat in snapshot.statistics("traceback")[:15]:
            print(f"{stat.size / 2**20:.1f} MiB in {stat.count} blocks", file=sys.stderr)
            for line in stat.traceback.format()[-8:]:
                print("   ", line, file=sys.stderr)

    signal.signal(signal.SIGUSR1, dump)
