"""The attacker with one namespace's rights, against the real API server and operator: a team
member who may create DBInstances, DBSnapshots and Secrets, and whoever has taken over a
server's agent (its ServiceAccount's token). Each attempt is made for real and its refusal is
asserted by the message that names it. The master user's attempts from inside the database
are tests/dataplane/test_security.py; names taken over, tests/cluster/test_bad_input.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from tests.support.dbinstances import DBInstances
from tests.support.kube import Cluster, wait_for

pytestmark = pytest.mark.cluster

TEAM_MEMBER = "team-member@example.com"
# What a platform team typically grants an application team in its own namespace.
TEAM_RULES = [
    {"apiGroups": ["kuberds.io"], "resources": ["dbinstances", "dbsnapshots"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "list", "patch"]},
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list"]},
]

Run = Callable[..., subprocess.CompletedProcess]


def as_user(cluster: Cluster, namespace: str, user: str) -> Run:
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return cluster.kubectl(*args, "-n", namespace, f"--as={user}", input=input, check=False)

    return run


@pytest.fixture
def team(cluster: Cluster, namespace: str) -> Run:
    grant = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "team", "namespace": namespace}, "rules": TEAM_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "team", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "team"},
         "subjects": [{"kind": "User", "name": TEAM_MEMBER, "apiGroup": "rbac.authorization.k8s.io"}]},
    ]  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": grant}))
    return as_user(cluster, namespace, TEAM_MEMBER)


def dbinstance(name: str, **spec) -> str:
    return json.dumps({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBInstance", "metadata": {"name": name},
                       "spec": {"engine": "postgres", **spec}})  # fmt: skip


def store(**fields: str) -> dict:
    return {"objectStore": {"bucket": "backups", "credentialsSecretName": "s3", **fields}}


# (what the team member tries, the field the refusal names, words of the refusal)
INJECTIONS = [
    ({"backup": store(endpoint="http://s3$({touch,x})y:9000")}, "spec.backup.objectStore.endpoint", "should match"),
    ({"backup": store(endpoint="https://s3.example:9000/x;id")}, "spec.backup.objectStore.endpoint", "should match"),
    ({"backup": store(region="us-east-1\nrepo1-path=/elsewhere")}, "spec.backup.objectStore.region", "should match"),
    ({"parameters": {"work_mem": "4MB'\narchive_command = 'id"}}, "spec.parameters.work_mem", ""),
    ({"parameters": {"work_mem\narchive_command": "id"}}, "spec.parameters", "parameters users may set"),
    ({"parameters": {"shared_preload_libraries": "evil"}}, "spec.parameters", "parameters users may set"),
    ({"parameters": {"archive_cleanup_command": "id"}}, "spec.parameters", "parameters users may set"),
    ({"parameters": {"Log_Directory": "/etc"}}, "spec.parameters", "parameters users may set"),
    ({"parameters": {"restore_command": "id"}}, "spec.parameters", ""),
]


@pytest.mark.parametrize(("spec", "field", "words"), INJECTIONS, ids=lambda v: str(v)[:40])
def test_a_team_member_cannot_reach_a_shell_or_a_config_file(team: Run, spec: dict, field: str, words: str) -> None:
    refused = team("create", "-f", "-", input=dbinstance("orders", **spec))
    assert refused.returncode != 0 and "is invalid" in refused.stderr, refused.stderr
    assert field in refused.stderr and words in refused.stderr, refused.stderr


def test_the_team_member_may_create_a_plain_server(team: Run) -> None:
    """The refusals above are the schema's, not a lack of rights."""
    made = team("create", "-f", "-", input=dbinstance("orders", parameters={"work_mem": "8MB"}))
    assert made.returncode == 0, made.stderr
    team("delete", "dbinstance", "orders", "--wait=false")


def wait_objects(dbi: DBInstances, *names: str) -> None:
    def present() -> bool:
        pods = {p.metadata.name for p in dbi.core.list_namespaced_pod(dbi.namespace).items}
        return all(f"{n}-0" in pods for n in names)

    wait_for(present, timeout=90, what=f"the pods of {', '.join(names)}")


def test_a_servers_agent_writes_only_its_own_servers_objects(cluster: Cluster, dbi: DBInstances) -> None:
    dbi.create("orders")
    dbi.create("billing")
    wait_objects(dbi, "orders", "billing")
    agent = as_user(cluster, dbi.namespace, f"system:serviceaccount:{dbi.namespace}:orders-agent")

    def can(verb: str, resource: str, *flags: str) -> bool:
        return agent("auth", "can-i", verb, resource, *flags).stdout.strip() == "yes"

    assert can("patch", "pods/orders-0") and can("patch", "configmaps/orders-leader")
    assert not can("patch", "pods/billing-0"), "another server's pod"
    assert not can("patch", "configmaps/billing-leader"), "another server's HA state"
    assert not can("patch", "configmaps/orders-settings"), "the agent's own settings are the operator's"
    assert not can("get", "secrets/orders-master") and not can("list", "secrets")
    assert not can("delete", "pods/orders-0") and not can("create", "pods")

    # Its own pod: the HA role label and annotations, nothing else (an admission policy).
    role = agent("label", "pod", "orders-0", "kuberds.io/role=replica", "--overwrite")
    assert role.returncode == 0, role.stderr
    relabel = agent("label", "pod", "orders-0", "app.kubernetes.io/instance=billing", "--overwrite")
    assert relabel.returncode != 0 and "may change only the kuberds.io/role label" in relabel.stderr, relabel.stderr
    extra = agent("label", "pod", "orders-0", "kuberds.io/role-of=billing")
    assert extra.returncode != 0 and "kuberds-agent-pod-writes" in extra.stderr, extra.stderr
    image = agent("patch", "pod", "orders-0", "--type=json",
                  "-p", '[{"op": "replace", "path": "/spec/containers/0/image", "value": "evil:1"}]')  # fmt: skip
    assert image.returncode != 0 and "may not change its pod's spec" in image.stderr, image.stderr
    settings = agent("patch", "configmap", "orders-settings", "--type=merge", "-p", '{"data": {"x": "y"}}')
    assert settings.returncode != 0 and "Forbidden" in settings.stderr
    pod = dbi.core.read_namespaced_pod("orders-0", dbi.namespace)
    assert pod.metadata.labels["app.kubernetes.io/instance"] == "orders"
    assert not pod.spec.containers[0].image.startswith("evil")


def snapshot(name: str, server: str) -> str:
    return json.dumps({"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot", "metadata": {"name": name},
                       "spec": {"source": {"dbInstance": server}}})  # fmt: skip


def test_an_agent_writes_the_status_of_its_own_servers_snapshots_only(cluster: Cluster, dbi: DBInstances) -> None:
    dbi.create("orders")
    dbi.create("billing")
    wait_objects(dbi, "orders", "billing")
    for name, server in (("orders-nightly", "orders"), ("billing-nightly", "billing")):
        cluster.kubectl("create", "-n", dbi.namespace, "-f", "-", input=snapshot(name, server))
    agent = as_user(cluster, dbi.namespace, f"system:serviceaccount:{dbi.namespace}:orders-agent")

    def can_write_status(name: str) -> bool:
        asked = agent("auth", "can-i", "patch", f"dbsnapshots.kuberds.io/{name}", "--subresource=status")
        return asked.stdout.strip() == "yes"

    wait_for(lambda: can_write_status("orders-nightly"), timeout=30, what="the grant for orders' own snapshot")
    assert not can_write_status("billing-nightly"), "another server's snapshot"
    forged = agent("patch", "dbsnapshot", "billing-nightly", "--subresource=status", "--type=merge",
                   "-p", '{"status": {"phase": "Available", "backupID": "forged"}}')  # fmt: skip
    assert forged.returncode != 0 and "Forbidden" in forged.stderr, forged.stderr
    listed = agent("get", "dbsnapshots", "-o", "name")
    assert "billing-nightly" in listed.stdout, "reading is allowed: the agent finds its snapshots by listing"
