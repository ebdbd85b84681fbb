"""The chart's monitoring (charts/kuberds/monitoring/, templates/{monitoring,prometheusrule,
dashboards}.yaml): every dashboard panel and alert reads only metrics kuberds' code exports,
collected from the code itself (the agents' collectors run on sample input, the operator's
metrics declared); the PodMonitors and the plain scrape config keep exactly the pods the
builders make; the chart renders the objects only when asked."""

from __future__ import annotations

import ast
import contextlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

import kuberds
from kuberds import metrics as operator_metrics
from kuberds.agent import proxy
from kuberds.agent.mariadb import metrics as mariadb
from kuberds.agent.memcached import agent as memcached
from kuberds.agent.metrics_http import CertificateExpiry
from kuberds.agent.redis import metrics as redis
from kuberds.agent.redis.snapshots import SnapshotStats
from kuberds.agent.report import AgentMetrics
from kuberds.contract.layouts import LAYOUTS, PROXY_LAYOUTS
from tests.support import chart
from tests.support.promql import (
    SCRAPE_SERIES,
    expressions_of_rules,
    metric_names,
    queries_of_dashboard,
    recorded_names,
)
from tests.support.tls import issue

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "charts" / "kuberds" / "monitoring"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
ALERTS = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
SCRAPE = yaml.safe_load((MONITORING / "scrape-config.yaml").read_text())
GOLDEN = Path(__file__).parent / "golden"
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
DASHBOARD = "Dashboard"  # how `kinds` below calls the dashboards' ConfigMaps (other ConfigMaps are not ours)
ENABLED = ("monitoring.podMonitors.enabled=true", "monitoring.prometheusRule.enabled=true",
           "monitoring.dashboards.enabled=true")  # fmt: skip
WITH_OPERATOR_API = ("--api-versions", "monitoring.coreos.com/v1")


# ---------------------------------------------------------------- the extractor


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (job, le) (rate(a_bucket{job="x", path=~"/b|c"}[5m]))', {"a_bucket"}),
    ("sum(rate(b_total[5m])) without (pod)", {"b_total"}),
    ("a / on (namespace, pod) group_left (server) b", {"a", "b"}),
    ("c > bool 3 unless ignoring (x) d", {"c", "d"}),
    ("e offset -5m and f @ start() or g @ 1609746000", {"e", "f", "g"}),
    ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m:30s])))", {"h_bucket"}),
    ('{__name__="i", job=~"j"}', {"i"}),
    ('{__name__=~"kuberds_.*"}', set()),
    ('{"dotted.name", a="b"}', {"dotted.name"}),
    ('label_replace(k, "dst", "$1", "src", "(.*)")', {"k"}),
    ('count_values("version", l) > Inf', {"l"}),
    ("1e3 + 0x1F * .5 - NaN + 1h30m", set()),
    ("predict_linear(m[6h], 4 * 3600) < 0", {"m"}),
    ("time() - max by (namespace) (n) > 26 * 3600", {"n"}),
    ('absent(o{job="p"}) # q is a comment\n + r', {"o", "r"}),
    ("rec:rule:rate5m * 2", {"rec:rule:rate5m"}),
    ('s{a="}{,\\"q\\" t"} + u{b=`raw }`}', {"s", "u"}),
    ('sum by ("quoted label") (v)', {"v"}),
    ("SUM BY (a) (w) AND ON (b) x", {"w", "x"}),
    ('rate(y{ns="$namespace"}[$__rate_interval]) * ${factor:raw} + z[[range]]', {"y", "z"}),
    ('label_values(kuberds_volume_size_bytes{namespace="$namespace"}, server)', {"kuberds_volume_size_bytes"}),
    ("label_values(namespace)", set()),
    ('query_result(topk(3, aa{a="b"}))', {"aa"}),
])  # fmt: skip
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_an_unbalanced_expression_is_an_error() -> None:
    with pytest.raises(ValueError):
        metric_names('rate(a{b="c"[5m])')


def test_queries_of_a_dashboard_include_collapsed_rows_and_variables() -> None:
    model = {"panels": [{"type": "row", "panels": [{"targets": [{"expr": "a"}, {"refId": "B"}]}]},
                        {"targets": [{"expr": "rate(b[5m])"}]}],
             "templating": {"list": [{"type": "datasource", "query": "prometheus"},
                                     {"type": "query", "query": "label_values(c, namespace)"},
                                     {"type": "query", "query": {"query": "label_values(d{x=\"$y\"}, pod)"}},
                                     {"type": "custom", "query": "1,2"}]}}  # fmt: skip
    queries = queries_of_dashboard(model)
    assert queries == ["a", "rate(b[5m])", "label_values(c, namespace)", 'label_values(d{x="$y"}, pod)']
    assert set().union(*map(metric_names, queries)) == {"a", "b", "c", "d"}


def test_expressions_of_rules() -> None:
    rules = {"groups": [{"rules": [{"alert": "A", "expr": "a > 1"}, {"record": "r:b", "expr": "sum(b)"}]}]}
    assert expressions_of_rules(rules) == ["a > 1", "sum(b)"]
    assert recorded_names(rules) == {"r:b"}


# ---------------------------------------------------------------- what the code exports


def exposition(registry: CollectorRegistry) -> set[str]:
    """The sample names a registry serves on /metrics (a family that has no sample yet,
    a labelled metric never used, by the names its type would give it)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created")}  # fmt: skip
    names = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        samples = {s.name for s in family.samples}
        names |= samples or {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def registry_of(*collectors: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def agent_metrics_engines() -> set[str]:
    """Engines whose agent builds AgentMetrics(engine) (the others export their own collectors)."""
    found = set()
    for path in (Path(kuberds.__file__).parent / "agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AgentMetrics" and node.args:
                found.add(ast.literal_eval(node.args[0]))
    return found


class FakeSql:
    def __init__(self, replica: bool):
        self.replica = replica

    def rows(self, statement: str, args: tuple = ()) -> list[dict]:
        if statement.startswith("SHOW GLOBAL STATUS"):
            return [{"Variable_name": key, "Value": "1"} for key in {**mariadb.GAUGES, **mariadb.COUNTERS}]
        if statement.startswith("SHOW SLAVE STATUS"):
            running = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0}
            return [running] if self.replica else []
        return [{"read_only": int(self.replica), "binlog_pos": "0-1-42"}]


class FakeRedis:
    def info(self) -> dict:
        return {**dict.fromkeys({**redis.GAUGES, **redis.COUNTERS}, 1), "role": "master", "slave0": {"offset": 1}}


def pool_collector() -> proxy.PoolCollector:
    collector = proxy.PoolCollector(pod=None)
    collector.console = lambda: contextlib.nullcontext(None)
    return collector


def proxy_rows(conn: object, statement: str) -> list[dict]:
    columns = proxy.POOL_GAUGES if statement == "SHOW POOLS" else proxy.STATS_COUNTERS
    return [{"database": "app", "user": "app", **dict.fromkeys(columns, 1)}]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample names by kind of pod: what each serves when everything it can report is there
    (a replica's and a primary's figures, a snapshot taken, a pool in use)."""
    volume = tmp_path_factory.mktemp("volume")
    with pytest.MonkeyPatch.context() as patch:
        stats = dict.fromkeys({**memcached.GAUGES, **memcached.COUNTERS}, "1")
        patch.setattr(memcached, "read_stats", lambda port, **_: stats)
        patch.setattr(proxy, "_rows", proxy_rows)
        agent = SimpleNamespace(discovery=SimpleNamespace(membership=None), port=11211, stats_tls=None)
        pods = {
            **{engine: exposition(AgentMetrics(engine).registry) for engine in agent_metrics_engines()},
            "mariadb": exposition(registry_of(mariadb.Collector(FakeSql(False), volume)))
            | exposition(registry_of(mariadb.Collector(FakeSql(True), volume))),
            "redis": exposition(registry_of(redis.Collector(FakeRedis(), SnapshotStats(1, 1, 1e9, 2.0, 100)))),
            "memcached": exposition(registry_of(memcached.Collector(agent))),
            "proxy": exposition(registry_of(pool_collector())),
        }
    # Every pod serves its certificates' expiry beside its own collectors (agent.metrics_http).
    tls = tmp_path_factory.mktemp("tls")
    issue(tls, ["db-0.db"])
    certificates = exposition(registry_of(CertificateExpiry(tls)))
    pods = {pod: names | certificates for pod, names in pods.items()}
    declared = [m for m in vars(operator_metrics).values() if isinstance(m, MetricWrapperBase)]
    pods["operator"] = exposition(registry_of(*declared))
    return pods


def used_names() -> dict[str, set[str]]:
    """Metric names by the file that reads them."""
    used = {path.name: set().union(*map(metric_names, queries_of_dashboard(json.loads(path.read_text()))))
            for path in DASHBOARDS}  # fmt: skip
    used["alerts.yaml"] = set().union(*map(metric_names, expressions_of_rules(ALERTS))) - recorded_names(ALERTS)
    return {file: names - SCRAPE_SERIES for file, names in used.items()}


def test_every_engine_and_the_proxy_serve_metrics(exported: dict[str, set[str]]) -> None:
    assert set(exported) == {*LAYOUTS, "proxy", "operator"}
    assert all(any(n.startswith("kuberds_") for n in names) for names in exported.values()), exported
    assert "kuberds_backup_failures_total" in exported["postgres"]  # a Counter's exposition name
    assert "kuberds_reconcile_duration_seconds_bucket" in exported["operator"]


def test_dashboards_and_alerts_read_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    everything = set().union(*exported.values())
    unknown = {file: sorted(names - everything) for file, names in used_names().items() if names - everything}
    assert not unknown, f"metrics no kuberds code exports: {unknown}"


def test_every_engine_has_a_down_alert_and_a_panel(exported: dict[str, set[str]]) -> None:
    read = set().union(*used_names().values())
    for engine in [*LAYOUTS, "proxy"]:
        up = f"kuberds_{engine}_up"
        assert up in exported[engine] and up in used_names()["alerts.yaml"] and up in read


# ---------------------------------------------------------------- alerts and dashboards


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    docs = (ROOT / "docs" / "monitoring.md").read_text()
    alerts = [rule for group in ALERTS["groups"] for rule in group["rules"] if "alert" in rule]
    assert len({a["alert"] for a in alerts}) == len(alerts) >= 10
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        assert {"summary", "description"} <= set(alert["annotations"]), alert["alert"]
        text = alert["annotations"]["summary"] + alert["annotations"]["description"]
        assert "$labels.namespace" in text, alert["alert"]
        assert re.search(rf"^#+ {alert['alert']}\b", docs, re.M), f"no runbook for {alert['alert']} in the docs"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_take_a_datasource_a_namespace_and_a_server(path: Path) -> None:
    model = json.loads(path.read_text())
    assert 36 <= model["schemaVersion"] <= 41 and model["uid"].startswith("kuberds-") and model["id"] is None
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "server"):
        # A string: Grafana reads a label_values() string in every version (an object it takes
        # for its own editor's fields).
        query = variables[name]["query"]
        assert variables[name]["type"] == "query" and query.startswith("label_values("), name
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in model["panels"]}) == len(model["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


# ---------------------------------------------------------------- which pods are scraped


def pod_templates() -> list[dict]:
    """Pod templates the builders make (their golden files), each with its ports."""
    found = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj["kind"] in ("StatefulSet", "Deployment"):
                found.append(obj["spec"]["template"])
    return found


def matches(selector: dict, labels: dict) -> bool:
    wanted = selector.get("matchLabels", {}).items() <= labels.items()
    return wanted and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def kept_by(job: dict, labels: dict, port: str) -> bool:
    """What Prometheus' keep/drop relabelling does with a pod target (phase Running)."""
    meta = {f"__meta_kubernetes_pod_label_{re.sub(r'[^A-Za-z0-9_]', '_', k)}": v for k, v in labels.items()}
    meta |= {"__meta_kubernetes_pod_container_port_name": port, "__meta_kubernetes_pod_phase": "Running"}
    for rule in job["relabel_configs"]:
        if rule.get("action") not in ("keep", "drop"):
            continue
        value = rule.get("separator", ";").join(meta.get(name, "") for name in rule["source_labels"])
        if bool(re.fullmatch(rule["regex"], value)) != (rule["action"] == "keep"):
            return False
    return True


def kinds(docs: list[dict]) -> set[str]:
    return {DASHBOARD if d["metadata"].get("labels", {}).get("grafana_dashboard") else d["kind"] for d in docs}


def dashboard_configmaps(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"].get("labels", {})]


def rendered(*sets: str, flags: tuple[str, ...] = WITH_OPERATOR_API) -> list[dict]:
    try:
        return chart.documents("r", "kuberds", *sets, flags=flags)
    except RuntimeError as missing:  # no helm built and none on PATH
        pytest.skip(str(missing))


def test_the_pod_monitors_and_the_scrape_config_keep_every_metrics_port_the_builders_open() -> None:
    monitors = [d for d in rendered(*ENABLED) if d["kind"] == "PodMonitor" and not d["metadata"]["name"].endswith(
        "-operator")]  # fmt: skip
    servers = next(j for j in SCRAPE["scrape_configs"] if j["job_name"] == "kuberds-servers")
    ports = {layout.metrics_port for layout in [*LAYOUTS.values(), *PROXY_LAYOUTS.values()]}
    templates = pod_templates()
    assert {t["metadata"]["labels"]["app.kubernetes.io/component"] for t in templates} == {"database", "cache", "proxy"}
    for template in templates:
        labels = template["metadata"]["labels"]
        named = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert named["metrics"] in ports, labels
        assert sum(matches(m["spec"]["selector"], labels) for m in monitors) == 1, labels
        assert all(e["port"] == "metrics" and e["scheme"] == "http" for m in monitors
                   for e in m["spec"]["podMetricsEndpoints"])  # fmt: skip
        assert [p for p in named if kept_by(servers, labels, p)] == ["metrics"], labels


def test_the_operator_is_scraped_by_its_chart_labels() -> None:
    for service in (True, False):
        docs = rendered(*ENABLED, f"metrics.service={str(service).lower()}")
        deployment = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
        monitor = next(d for d in docs if d["metadata"]["name"] == "r-kuberds-operator")
        assert monitor["kind"] == ("ServiceMonitor" if service else "PodMonitor")
        if service:  # the ServiceMonitor selects the metrics Service, which selects the pod
            target = next(d for d in docs if d["kind"] == "Service")
            assert matches(monitor["spec"]["selector"], target["metadata"]["labels"])
            assert matches({"matchLabels": target["spec"]["selector"]}, deployment["metadata"]["labels"])
        else:
            assert matches(monitor["spec"]["selector"], deployment["metadata"]["labels"])
    job = next(j for j in SCRAPE["scrape_configs"] if j["job_name"] == "kuberds-operator")
    assert kept_by(job, deployment["metadata"]["labels"], "metrics")
    assert not kept_by(job, deployment["metadata"]["labels"], "health")
    assert not any(kept_by(job, t["metadata"]["labels"], "metrics") for t in pod_templates())


# ---------------------------------------------------------------- helm template


def test_nothing_is_rendered_by_default() -> None:
    assert not kinds(rendered()) & {*MONITORING_KINDS, DASHBOARD}


def test_everything_is_rendered_when_enabled() -> None:
    docs = rendered(*ENABLED, "monitoring.labels.release=kube-prometheus-stack")
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    assert len(by_kind["PodMonitor"]) == 3 and len(by_kind["ServiceMonitor"]) == 1
    for obj in [*by_kind["PodMonitor"], *by_kind["ServiceMonitor"], *by_kind["PrometheusRule"]]:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert all(m["spec"]["namespaceSelector"] == {"any": True} for m in by_kind["PodMonitor"])
    (rule,) = by_kind["PrometheusRule"]
    assert rule["spec"]["groups"] == ALERTS["groups"], "the rules file, unchanged"
    configmaps = {next(iter(c["data"])): c for c in dashboard_configmaps(docs)}
    assert sorted(configmaps) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        configmap = configmaps[path.name]
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap["data"][path.name]) == json.loads(path.read_text())


def test_without_the_prometheus_operator_only_the_dashboards_are_rendered() -> None:
    assert kinds(rendered(*ENABLED, flags=())) & {*MONITORING_KINDS, DASHBOARD} == {DASHBOARD}


def test_dashboards_go_where_grafana_looks() -> None:
    docs = rendered("monitoring.dashboards.enabled=true", "monitoring.dashboards.namespace=grafana",
                    "monitoring.dashboards.annotations.grafana_folder=kuberds")  # fmt: skip
    configmaps = dashboard_configmaps(docs)
    assert len(configmaps) == len(DASHBOARDS)
    assert all(c["metadata"]["namespace"] == "grafana" for c in configmaps)
    assert all(c["metadata"]["annotations"] == {"grafana_folder": "kuberds"} for c in configmaps)


def test_the_values_schema_refuses_unknown_monitoring_keys() -> None:
    try:
        result = chart.render("r", "kuberds", "monitoring.podMonitor.enabled=true")
    except RuntimeError as missing:
        pytest.skip(str(missing))
    assert result.returncode != 0 and "podMonitor" in result.stderr
