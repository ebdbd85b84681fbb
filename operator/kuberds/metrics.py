"""The operator's own Prometheus metrics (the database pods serve theirs from the agent)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import kopf
import prometheus_client as prom

RECONCILES = prom.Counter("kuberds_reconcile_total", "Handler runs, by kind and outcome", ["kind", "result"])
RECONCILE_SECONDS = prom.Histogram(
    "kuberds_reconcile_duration_seconds",
    "Handler duration, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_REQUESTS = prom.Counter("kuberds_api_requests_total", "Kubernetes API requests made, by method", ["method"])
STORAGE_GROWTHS = prom.Counter(
    "kuberds_storage_autoscaling_growths_total", "Volume growths storage autoscaling asked for", ["kind"]
)


def instrumented(kind: str) -> Callable:
    """Counts and times a handler: result="retry" for a wait it said (TemporaryError), "error"
    for any other failure (Kopf retries both), "ok" otherwise."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                result = handler(*args, **kwargs)
            except kopf.TemporaryError:
                RECONCILES.labels(kind=kind, result="retry").inc()
                raise
            except Exception:
                RECONCILES.labels(kind=kind, result="error").inc()
                raise
            finally:
                RECONCILE_SECONDS.labels(kind=kind).observe(time.perf_counter() - began)
            RECONCILES.labels(kind=kind, result="ok").inc()
            return result

        return run

    return wrap


def serve(port: int) -> None:
    if port:
        prom.start_http_server(port)
