"""Proof that the control-plane harness is real Kubernetes, not a stand-in.

Each test exercises a different real component: the controller-manager (ReplicaSets,
garbage collection), the scheduler (topology spread), kwok (pods Running on fake nodes in
three zones), the API server's CEL validation, and RBAC with a real ServiceAccount token.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.kube import ROOT, Cluster, wait_for

pytestmark = pytest.mark.cluster

ZONE = "topology.kubernetes.io/zone"


def spread_deployment(name: str, replicas: int) -> dict:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.invalid/app:1", "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"}}}],
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
                         "labelSelector": {"matchLabels": labels}}
                    ],
                },
            },
        },
    }  # fmt: skip


def test_three_zoned_nodes_are_ready(api: kubernetes.client.ApiClient) -> None:
    nodes = kubernetes.client.CoreV1Api(api).list_node(label_selector=ZONE).items
    ready = {
        n.metadata.labels[ZONE]
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    }
    assert {"zone-a", "zone-b", "zone-c"} <= ready


def test_deployment_spreads_across_zones_and_runs(api: kubernetes.client.ApiClient, namespace: str) -> None:
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, spread_deployment("spread", replicas=3))

    # The deployment controller (in the real controller-manager) makes a ReplicaSet…
    replica_sets = wait_for(lambda: apps.list_namespaced_replica_set(namespace).items, what="a ReplicaSet")
    assert replica_sets[0].metadata.owner_references[0].kind == "Deployment"

    # …whose pods the scheduler binds one per zone, and kwok reports Running.
    def running_pods():
        pods = core.list_namespaced_pod(namespace).items
        done = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return done if len(done) == 3 else None

    pods = wait_for(running_pods, what="3 Running pods")
    nodes = {n.metadata.name: n for n in core.list_node().items}
    zones = sorted(nodes[p.spec.node_name].metadata.labels[ZONE] for p in pods)
    assert zones == ["zone-a", "zone-b", "zone-c"]
    assert all(p.status.pod_ip and p.status.pod_ip.startswith("198.18.") for p in pods)
    wait_for(
        lambda: apps.read_namespaced_deployment(namespace=namespace, name="spread").status.ready_replicas == 3,
        what="the Deployment to report 3 ready replicas",
    )


def test_scheduler_refuses_a_placement_that_breaks_the_spread(api: kubernetes.client.ApiClient, namespace: str) -> None:
    """Pods may only go to zone-a, but the spread still counts all three zones (Ignore):
    a second pod there would make the skew 2, so the scheduler must leave it Pending."""
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    deployment = spread_deployment("pinned", replicas=2)
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {ZONE: "zone-a"}
    deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = "Ignore"
    apps.create_namespaced_deployment(namespace, deployment)

    def one_running_one_pending():
        pods = core.list_namespaced_pod(namespace).items
        phases = sorted(p.status.phase for p in pods)
        return pods if phases == ["Pending", "Running"] else None

    pods = wait_for(one_running_one_pending, what="one Running and one Pending pod")
    pending = next(p for p in pods if p.status.phase == "Pending")
    scheduled = next(c for c in pending.status.conditions if c.type == "PodScheduled")
    assert scheduled.status == "False" and scheduled.reason == "Unschedulable"
    assert "topology spread" in scheduled.message


def test_deleting_the_owner_collects_dependents(api: kubernetes.client.ApiClient, namespace: str) -> None:
    apps, core = kubernetes.client.AppsV1Api(api), kubernetes.client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, spread_deployment("doomed", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod(namespace).items) == 2, what="2 pods")

    apps.delete_namespaced_deployment("doomed", namespace, propagation_policy="Background")

    # The garbage collector removes the ReplicaSet, then its pods (kwok finishes them).
    wait_for(lambda: not apps.list_namespaced_replica_set(namespace).items, what="ReplicaSet collected")
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, what="pods collected")


@pytest.fixture
def widget_crd(api: kubernetes.client.ApiClient):
    group = f"h{uuid.uuid4().hex[:8]}.harness.kuberds.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {"rule": "self.min <= self.max", "message": "spec.min must not exceed spec.max",
                             "fieldPath": ".min"}
                        ],
                    }},
                }},
            }],
        },
    }  # fmt: skip
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(crd)

    def established():
        status = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    wait_for(established, what="the CRD to be Established")
    try:
        yield group
    finally:
        extensions.delete_custom_resource_definition(crd["metadata"]["name"])


def test_cel_rule_refuses_a_bad_object(api: kubernetes.client.ApiClient, namespace: str, widget_crd: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(api)

    def create(name: str, low: int, high: int) -> dict:
        body = {"apiVersion": f"{widget_crd}/v1", "kind": "Widget", "metadata": {"name": name},
                "spec": {"min": low, "max": high}}  # fmt: skip
        return objects.create_namespaced_custom_object(widget_crd, "v1", namespace, "widgets", body)

    # The API server may take a moment to serve a brand-new CRD's resource.
    wait_for(lambda: _created(lambda: create("good", 1, 3)), what="a valid Widget to be accepted")
    with pytest.raises(ApiException) as refused:
        create("bad", 5, 2)
    assert refused.value.status == 422
    assert "spec.min must not exceed spec.max" in refused.value.body
    assert "spec.min" in refused.value.body  # the fieldPath names the field


def _created(create) -> bool:
    try:
        create()
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def test_rbac_refuses_a_service_account_without_rights(
    api: kubernetes.client.ApiClient, cluster: Cluster, namespace: str
) -> None:
    core, rbac = kubernetes.client.CoreV1Api(api), kubernetes.client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    admin = cluster.client().configuration
    config = kubernetes.client.Configuration()
    config.host, config.ssl_ca_cert, config.verify_ssl = admin.host, admin.ssl_ca_cert, admin.verify_ssl
    config.api_key = {"authorization": f"Bearer {token}"}  # the token only: no client certificate
    nobody = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))

    # Authenticated (not 401) but not authorized (403).
    with pytest.raises(ApiException) as refused:
        nobody.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in refused.value.body

    # The same token works once a Role grants the right, so the refusal above was RBAC's.
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "secret-reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
    })  # fmt: skip
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "nobody-reads-secrets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
    })  # fmt: skip
    wait_for(lambda: _allowed(nobody, namespace), what="the RoleBinding to take effect")
    with pytest.raises(ApiException) as still_refused:
        nobody.list_namespaced_config_map(namespace)
    assert still_refused.value.status == 403


def _allowed(core: kubernetes.client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_secret(namespace)
        return True
    except ApiException as error:
        if error.status == 403:
            return False
        raise


def test_second_up_reports_the_running_cluster(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("only the hack/ cluster has up/status")
    script = [sys.executable, str(ROOT / "hack" / "cluster.py")]
    again = subprocess.run([*script, "up"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already running" in again.stdout
    status = subprocess.run([*script, "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0
    assert status.stdout.count("healthy") == 5 and "kube-apiserver.log" in status.stdout
