"""The Helm chart: values validated by its schema, objects the API server accepts, and
RBAC that grants the operator what it needs and no more."""

from __future__ import annotations

import json

import pytest
import yaml

from kuberds.builders.network_policy import OPERATOR_POD_LABELS
from kuberds.config import OperatorConfig
from tests.cluster.conftest import OPERATOR_NAMESPACE, RELEASE
from tests.support.chart import CHART, documents, render
from tests.support.kube import ROOT, Cluster

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("metrics.port=80", "/metrics/port"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("watchNamespaces[0]=Not_A_Namespace", "/watchNamespaces/0"),
        ("finalSnapshotTimeoutSeconds=5", "/finalSnapshotTimeoutSeconds"),
        ("replicaCount=3", "replicaCount"),
        # The policy ships in crds/ beside the CRDs now: no value switches it.
        ("deletionProtectionPolicy=false", "deletionProtectionPolicy"),
        # A default store follows the API's ObjectStore: a bucket and credentials at least.
        ("defaultObjectStore.region=eu-west-1", "missing properties 'bucket', 'credentialsSecretName'"),
        ("defaultObjectStore.endpoint=https://s3.local", "/defaultObjectStore"),
        ("defaultObjectStore.bucket=Backups_2024", "/defaultObjectStore/bucket"),
        ("defaultObjectStore.endpoint=s3.local", "/defaultObjectStore/endpoint"),
        ("defaultObjectStore.credentialsSecretName=S3_Keys", "/defaultObjectStore/credentialsSecretName"),
        ("defaultObjectStore.region=EU West", "/defaultObjectStore/region"),
        ("defaultObjectStore.path=backups?x", "/defaultObjectStore/path"),
        ("defaultObjectStore.forcePathStyle=maybe", "/defaultObjectStore/forcePathStyle"),
        ("defaultObjectStore.verifyTLS=no", "/defaultObjectStore/verifyTLS"),
        ("defaultObjectStore.caSecretName=My.CA", "/defaultObjectStore/caSecretName"),
        ("defaultObjectStore.accessKey=x", "/defaultObjectStore"),
    ],
)
def test_values_schema_refuses_bad_values(setting: str, complaint: str) -> None:
    result = render("bad", "default", setting)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_chart_renders_what_a_user_installs() -> None:
    docs = documents("prod", "databases", "watchNamespaces={team-a,team-b}", "image.tag=1.2.3")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service",
                            *["Role", "RoleBinding"] * 2])  # fmt: skip
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "kuberds/operator:1.2.3"
    assert "--namespace=team-a" in container["args"] and "--namespace=team-b" in container["args"]
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERDS_IMAGE_POSTGRES"] == "kuberds/postgres:0.1.0"
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kuberds" for d in docs)
    assert "KUBERDS_DEFAULT_OBJECT_STORE" not in env, "no store configured: servers run without backups"
    # The servers' NetworkPolicies admit the operator's pods to the HA API by these labels.
    assert OPERATOR_POD_LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    # The CRDs and the deletion-protection policy are the chart's crds/: created when absent,
    # never templated, upgraded or deleted by Helm (one owner with `kubectl apply -f crds/`).
    with_crds = documents("prod", "databases", flags=("--include-crds",))
    added = sorted(d["kind"] for d in with_crds if d["kind"] not in kinds)
    policies = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 2  # deletion, agent pods
    assert added == sorted(["CustomResourceDefinition"] * 5 + policies)
    for policy in ("kuberds-deletion-protection.yaml", "kuberds-agent-pod-writes.yaml"):
        assert (CHART / "crds" / policy).read_text() == (ROOT / "crds" / policy).read_text()


def test_chart_passes_the_default_object_store_to_the_operator() -> None:
    docs = documents(
        "prod",
        "databases",
        "defaultObjectStore.bucket=backups",
        "defaultObjectStore.credentialsSecretName=s3",
        "defaultObjectStore.endpoint=https://s3.local",
    )
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    store = json.loads(env["KUBERDS_DEFAULT_OBJECT_STORE"])
    assert store == {"bucket": "backups", "credentialsSecretName": "s3", "endpoint": "https://s3.local"}
    assert OperatorConfig.from_environment(env).default_object_store == store


def test_a_complete_default_object_store_is_accepted() -> None:
    store = {"bucket": "team.backups-1", "endpoint": "https://s3.example.com:9000", "region": "eu-west-1",
             "path": "prod/kuberds_v1", "credentialsSecretName": "s3-keys", "forcePathStyle": False,
             "verifyTLS": True, "caSecretName": "s3-ca"}  # fmt: skip
    sets = [f"defaultObjectStore.{key}={str(value).lower() if isinstance(value, bool) else value}"
            for key, value in store.items()]  # fmt: skip
    docs = documents("prod", "databases", *sets)
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["KUBERDS_DEFAULT_OBJECT_STORE"]) == store


def test_the_default_object_store_has_the_api_objectstore_rules() -> None:
    """The values schema repeats the CRD's ObjectStore rules: a drift between the two fails here."""
    crd = yaml.safe_load((ROOT / "crds" / "kuberds.io_dbinstances.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    api = spec["properties"]["backup"]["properties"]["objectStore"]
    values = json.loads((CHART / "values.schema.json").read_text())["properties"]["defaultObjectStore"]
    assert values["then"]["required"] == api["required"]
    assert values["properties"].keys() == api["properties"].keys()
    for name, rules in api["properties"].items():
        given = values["properties"][name]
        for rule in ("type", "pattern", "maxLength"):
            assert given.get(rule) == rules.get(rule, given.get(rule)), f"{name}: {rule}"


@pytest.mark.parametrize(("metrics", "health"), [(8081, 8081), (9000, 9000)])
def test_metrics_and_health_need_two_ports(metrics: int, health: int) -> None:
    result = render("bad", "default", f"metrics.port={metrics}", f"healthPort={health}")
    assert result.returncode != 0
    assert f"metrics.port and healthPort must differ (both are {health})" in result.stderr, result.stderr
    assert documents("ok", "default", f"metrics.port={metrics}", f"healthPort={health + 1}")


def test_the_chart_needs_kubernetes_1_30_for_its_admission_policy() -> None:
    old = render("old", "default", flags=("--kube-version", "1.29.9"))
    assert old.returncode != 0 and "requires kubeVersion: >=1.30.0-0" in old.stderr, old.stderr
    for version in ("1.30.0", "1.34.4"):
        assert documents("new", "default", flags=("--kube-version", version))


def test_watched_namespaces_get_roles_and_nothing_namespaced_stays_cluster_wide() -> None:
    docs = documents("r", "kuberds", "watchNamespaces={team-a,team-b}")
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    cluster_wide = {resource for rule in cluster_role["rules"] for resource in rule["resources"]}
    assert cluster_wide == {"nodes", "namespaces", "storageclasses", "customresourcedefinitions"}
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert sorted(roles) == sorted(bindings) == ["team-a", "team-b"]
    granted = {resource for rule in roles["team-a"]["rules"] for resource in rule["resources"]}
    assert {"statefulsets", "secrets", "dbinstances", "roles"} <= granted and not granted & cluster_wide
    assert bindings["team-b"]["subjects"] == [{"kind": "ServiceAccount", "name": "r-kuberds", "namespace": "kuberds"}]
    everywhere = next(d for d in documents("r", "kuberds") if d["kind"] == "ClusterRole")
    assert {r for rule in everywhere["rules"] for r in rule["resources"]} == granted | cluster_wide


def test_the_api_server_accepts_every_chart_object(cluster: Cluster) -> None:
    docs = documents("dry", "default")
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert result.stdout.count("(server dry run)") == len(docs), result.stdout


def test_rbac_is_least_privilege(cluster: Cluster, operator) -> None:
    """The operator's account (used by every cluster test) can do its work and no more."""
    account = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"

    def can(verb: str, resource: str, namespace: str = "default") -> bool:
        result = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={account}", check=False)
        return result.stdout.strip() == "yes"

    assert can("patch", "statefulsets.apps") and can("create", "dbsnapshots.kuberds.io")
    assert can("patch", "persistentvolumeclaims") and can("delete", "pods")
    assert not can("list", "secrets"), "generated credentials must not be readable in bulk"
    assert not can("delete", "secrets") and not can("delete", "persistentvolumeclaims")
    assert not can("delete", "dbinstances.kuberds.io"), "the operator never deletes a user's server"
    assert not can("create", "clusterroles.rbac.authorization.k8s.io")
    assert can("create", "deployments.apps") and can("delete", "services"), "the proxy: made, and taken down"
    # A StatefulSet is deleted only to be made again with larger claim templates (its pods kept).
    assert can("delete", "statefulsets.apps") and not can("delete", "daemonsets.apps")
    assert not can("create", "endpoints"), "nothing uses them"
    assert not can("*", "*")
