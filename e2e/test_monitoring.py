"""The chart's dashboards and alerts (charts/kuberds/monitoring/) read only metrics that real
pods serve: one of each kind of pod kuberds runs — a PostgreSQL DBInstance with its proxy, a
Multi-AZ MariaDB DBInstance (a primary and a replica), a Redis CacheCluster with a replica and
a snapshot taken, a Memcached CacheCluster — and the operator, each scraped on its metrics
port through the API server's pod proxy (GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/metrics),
as `kubectl get --raw` does. The unit tests check the same names against the code; this
checks them against what the pods really serve once running.

The servers live in a namespace of the module's own (the shared namespace's servers come and
go with the scenarios of other modules). The pod proxy reaches the pods from the API server:
on a cluster that enforces NetworkPolicies, the servers' policies (which admit metrics
scrapes only from the operator's namespace and namespaces labelled
kuberds.io/metrics-scraper=true) may refuse it; the local cluster enforces none.

    .venv/bin/pytest e2e/test_monitoring.py -v -s     # the local cluster (started if need be)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.support.kube import OPERATOR_SELECTOR, ROOT, wait_for
from tests.support.promql import (
    SCRAPE_SERIES,
    expressions_of_rules,
    metric_names,
    queries_of_dashboard,
    recorded_names,
)

from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbinstance, object_store
from e2e.support import E2E, OPERATOR_NAMESPACE

NAMESPACE = "kuberds-e2e-monitoring"
POSTGRES, MARIADB, REDIS, MEMCACHED = "gauges", "tallies", "counters", "buckets"
SNAPSHOT = f"{REDIS}-snap"
MONITORING = ROOT / "charts" / "kuberds" / "monitoring"
# Pods kuberds makes that serve metrics (their jobs and the client pod do not).
SERVED_COMPONENTS = ("database", "cache", "proxy", "proxy-reader")
METRICS_PORT = "metrics"  # the container port's name on every kind of pod, and on the operator's


def servers() -> list[dict]:
    """The smallest of each: db.t3.micro and cache.t3.micro, no backups but Redis snapshots."""

    def cache(name: str, spec: dict) -> dict:
        return {"apiVersion": "kuberds.io/v1alpha1", "kind": "CacheCluster",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"nodeType": "cache.t3.micro", **spec}}  # fmt: skip

    snapshots = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-monitoring"}}
    return [
        dbinstance(NAMESPACE, POSTGRES, proxy={"enabled": True}),
        dbinstance(NAMESPACE, MARIADB, engine="mariadb", multiAZ=True),
        cache(REDIS, {"engine": "redis", "replicas": 1, "automaticFailover": True, "snapshots": snapshots}),
        cache(MEMCACHED, {"engine": "memcached", "numNodes": 1}),
    ]


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


@dataclass(frozen=True)
class Target:
    namespace: str
    pod: str
    port: int
    kind: str  # the pod's engine and component (postgres/database, postgres/proxy, …) or "operator"

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}:{self.port}/proxy/metrics"


def metrics_port(pod: dict) -> int | None:
    ports = [p for c in pod["spec"]["containers"] for p in c.get("ports", []) if p.get("name") == METRICS_PORT]
    return ports[0]["containerPort"] if ports else None


def metrics_targets(e2e: E2E) -> list[Target]:
    """The running pods of the namespace that kuberds made with a metrics port, and the operator's."""
    selector = f"app.kubernetes.io/managed-by=kuberds,app.kubernetes.io/component in ({','.join(SERVED_COMPONENTS)})"
    targets = []
    for pod in [*e2e.items("pods", selector), *e2e.items("pods", OPERATOR_SELECTOR, namespace=OPERATOR_NAMESPACE)]:
        port, meta = metrics_port(pod), pod["metadata"]
        if port is None or pod["status"].get("phase") != "Running":
            continue
        labels = meta["labels"]
        kind = "operator" if labels.get("app.kubernetes.io/component") == "operator" else (
            f"{labels['app.kubernetes.io/name']}/{labels['app.kubernetes.io/component']}")  # fmt: skip
        targets.append(Target(meta["namespace"], meta["name"], port, kind))
    return targets


def exported_names_of_pods(e2e: E2E, targets: list[Target]) -> tuple[dict[Target, set[str]], dict[Target, str]]:
    """The sample names each target serves now (as Prometheus would store them), and the
    targets that could not be scraped, with why."""
    names, failed = {}, {}
    for target in targets:
        result = e2e.kubectl("get", "--raw", target.path, check=False, timeout=30)
        if result.returncode != 0:
            failed[target] = result.stderr.strip()[-300:]
            continue
        names[target] = {s.name for f in text_string_to_metric_families(result.stdout) for s in f.samples}
    return names, failed


def used_by_the_chart() -> dict[str, set[str]]:
    """Metric names by the dashboard or rules file that reads them."""
    used = {}
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        used[path.name] = set().union(*map(metric_names, queries_of_dashboard(json.loads(path.read_text()))))
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    used["alerts.yaml"] = set().union(*map(metric_names, expressions_of_rules(rules))) - recorded_names(rules)
    return {file: names - SCRAPE_SERIES for file, names in used.items()}


def answers_through_the_proxy(e2e: E2E) -> bool:
    """A statement through the proxy Service: its pools exist once a client used them."""
    try:
        return e2e.sql(POSTGRES, "SELECT 1", proxy=True) == [["1"]]
    except (AssertionError, KeyError):  # the proxy pods may still be starting (no proxyEndpoint yet)
        return False


def take_a_redis_snapshot(e2e: E2E) -> None:
    """A DBSnapshot of the Redis cluster: the member that takes it says so in its metrics."""
    e2e.apply({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot",
               "metadata": {"name": SNAPSHOT, "namespace": NAMESPACE},
               "spec": {"source": {"cacheCluster": REDIS}}})  # fmt: skip
    taken = wait_for(lambda: (s := e2e.status(SNAPSHOT, "dbsnapshot")).get("phase") in ("Available", "Failed") and s,
                     timeout=240, interval=2, what=f"DBSnapshot {SNAPSHOT} taken")  # fmt: skip
    assert taken["phase"] == "Available", taken


def served_until_complete(e2e: E2E, wanted: set[str], timeout: float) -> tuple[dict, dict]:
    """Scrapes every target until all of `wanted` is served or `timeout` passes; the last
    scrape's names by target, and its failures. Some names come a moment after Available: a
    replica's lag once it streams, a pool's figures once PgBouncer lists it."""
    deadline = time.monotonic() + timeout
    while True:
        names, failed = exported_names_of_pods(e2e, metrics_targets(e2e))
        if time.monotonic() > deadline or (not failed and wanted <= set().union(set(), *names.values())):
            return names, failed
        time.sleep(5)


def print_names(names: dict[Target, set[str]], wanted: set[str]) -> None:
    by_kind: dict[str, set[str]] = {}
    for target, found in names.items():
        by_kind.setdefault(f"{target.kind} (port {target.port})", set()).update(found)
    indent = "\n        "
    for kind, found in sorted(by_kind.items()):
        print(f"\n    {kind}: {len(found)} names{indent}" + indent.join(sorted(found)))
    served = set().union(set(), *names.values())
    unused = sorted(n for n in served - wanted if n.startswith("kuberds_"))
    print(f"\n    served by kuberds, read by no dashboard or alert ({len(unused)}):{indent}" + indent.join(unused))


def test_every_metric_the_dashboards_and_alerts_read_is_served_by_the_pods(e2e: E2E) -> None:
    began = time.monotonic()
    for name, kind in ((POSTGRES, "dbinstance"), (MARIADB, "dbinstance"), (REDIS, "cachecluster"),
                       (MEMCACHED, "cachecluster")):  # fmt: skip
        e2e.wait_available(name, timeout=600, kind=kind)
    e2e.record("monitoring: four servers apply -> Available (s)", round(time.monotonic() - began, 1))
    wait_for(lambda: answers_through_the_proxy(e2e), timeout=120, interval=2, what="an answer through the proxy")
    take_a_redis_snapshot(e2e)

    used = used_by_the_chart()
    wanted = set().union(*used.values())
    names, failed = served_until_complete(e2e, wanted, timeout=180)
    print_names(names, wanted)
    served = set().union(set(), *names.values())
    e2e.record("monitoring: kuberds_* names served", len({n for n in served if n.startswith("kuberds_")}))

    assert not failed, "pods not scraped through the API server's pod proxy: " + json.dumps(
        {f"{t.namespace}/{t.pod}:{t.port}": why for t, why in failed.items()}, indent=1)  # fmt: skip
    kinds = {t.kind for t in names}
    assert kinds >= {"postgres/database", "postgres/proxy", "mariadb/database", "redis/cache", "memcached/cache",
                     "operator"}, sorted(kinds)  # fmt: skip
    missing = {file: sorted(names_read - served) for file, names_read in used.items() if names_read - served}
    assert not missing, f"read by the chart, served by no pod: {missing}"
