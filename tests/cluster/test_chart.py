"""The Helm chart: values validated by its schema, objects the API server accepts, and
RBAC that grants the operator what it needs and no more."""

from __future__ import annotations

import json

import pytest
import yaml

from kuberds.builders.server import OPERATOR_POD_LABELS
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
    ],
)
def test_values_schema_refuses_bad_values(setting: str, complaint: str) -> None:
    result = render("bad", "default", setting)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_chart_renders_what_a_user_installs() -> None:
    docs = documents("prod", "databases", "watchNamespaces={team-a,team-b}", "image.tag=1.2.3")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"])
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
    assert added == sorted(["CustomResourceDefinition"] * 5 + ["ValidatingAdmissionPolicy",
                                                              "ValidatingAdmissionPolicyBinding"])  # fmt: skip
    assert (CHART / "crds" / "kuberds-deletion-protection.yaml").read_text() == (
        ROOT / "crds" / "kuberds-deletion-protection.yaml"
    ).read_text()


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
    assert not can("create", "deployments.apps"), "nothing builds Deployments yet"
    assert not can("*", "*")
