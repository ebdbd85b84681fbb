"""kubectl kuberds against the real API server (pods on kwok), run in-process through its main()
with a kubeconfig: what each command writes to the API and what it prints. connect and logs
need real pods: e2e/test_plugin.py."""

from __future__ import annotations

import base64
import re
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest
import yaml

from kuberds.plugin import cli
from tests.support.dbinstances import GROUP, STORE, VERSION, DBInstances, store_credentials
from tests.support.kube import ROOT, Cluster, token_kubeconfig, wait_for

pytestmark = pytest.mark.cluster
SWITCHOVER = "requests.kuberds.io/switchover-to"


class Plugin:
    """`kubectl kuberds ARGS` in this process, as one user (a kubeconfig), in one namespace."""

    def __init__(self, capsys: pytest.CaptureFixture, kubeconfig: Path, namespace: str | None):
        self.capsys, self.kubeconfig, self.namespace = capsys, kubeconfig, namespace

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()  # what came before is not this command's
        where = ["-n", self.namespace] if self.namespace else []
        code = cli.main(["--kubeconfig", str(self.kubeconfig), *where, *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def plugin(cluster: Cluster, dbi: DBInstances, capsys: pytest.CaptureFixture) -> Plugin:
    return Plugin(capsys, cluster.kubeconfig, dbi.namespace)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_status_shows_the_server_and_errors_name_what_is_missing(dbi: DBInstances, plugin: Plugin) -> None:
    dbi.create("orders", multiAZ=True)
    dbi.wait_phase("orders", "Available")
    ns = dbi.namespace
    code, out, err = plugin("status", "orders")
    assert code == 0, err
    assert out.startswith(f"DBInstance orders (namespace {ns})\n"), out
    header = out.split("\n\n")[0]
    assert "postgres" in header and "db.t3.micro" in header and "Available" in header
    assert f"orders.{ns}.svc:5432" in header and f"orders-ro.{ns}.svc:5432" in header
    members = out.split("\nMembers\n")[1].split("\n\n")[0].splitlines()
    assert members[0].split()[:4] == ["POD", "ROLE", "ZONE", "READY"]
    assert sorted(line.split()[0] for line in members[1:]) == ["orders-0", "orders-1"]
    zones = {line.split()[2] for line in members[1:]}
    assert len(zones) == 2, members
    conditions = out.split("\nConditions\n")[1].split("\n\n")[0]
    assert {"Available", "Ready", "Reconciled"} <= {line.split()[0] for line in conditions.splitlines()[1:]}
    events = out.split("\nEvents (the last 15, oldest first)\n")[1]
    assert "DBInstance/orders" in events and "AllMembersReady" in events

    assert plugin("status", "orders", "--kind", "dbi")[0] == 0
    code, out, err = plugin("status", "nope")
    assert (code, out) == (1, "")
    assert err == f"error: no DBInstance, DBCluster, ReadReplica or CacheCluster named nope in namespace {ns}\n"
    code, _, err = plugin("pause", "nope", "--kind", "DBCluster")
    assert (code, err) == (1, f"error: DBCluster nope not found in namespace {ns}\n")


def test_pause_and_resume_flip_automation(dbi: DBInstances, plugin: Plugin) -> None:
    dbi.create("hands-off")
    code, out, err = plugin("pause", "hands-off")
    assert code == 0, err
    assert "automation paused" in out
    assert dbi.get("hands-off")["spec"]["automationPaused"] is True
    dbi.wait_phase("hands-off", "Paused")
    assert "automation is paused already" in plugin("pause", "hands-off")[1]
    code, out, _ = plugin("resume", "hands-off")
    assert code == 0 and "automation resumed" in out
    assert dbi.get("hands-off")["spec"]["automationPaused"] is False


def test_snapshot_and_restore_create_what_they_should(dbi: DBInstances, plugin: Plugin) -> None:
    store_credentials(dbi)
    dbi.create("src", multiAZ=True, instanceClass="db.t3.small", storage={"size": "2Gi"}, databaseName="shop",
               masterUsername="owner", parameters={"work_mem": "8MB"}, deletionProtection=True,
               backup={"objectStore": STORE, "retentionDays": 3})  # fmt: skip
    dbi.wait_condition("src", "Reconciled", "True")

    code, out, err = plugin("snapshot", "src", "--snapshot-name", "src-snap")
    assert code == 0, err
    assert out == "DBSnapshot src-snap of DBInstance src created\n"
    snap = dbi.get("src-snap", plural="dbsnapshots")
    assert snap["spec"] == {"source": {"dbInstance": "src"}, "deletionPolicy": "Delete"}
    code, out, err = plugin("snapshot", "src", "--retain")
    assert code == 0, err
    named = re.fullmatch(r"DBSnapshot (src-\d{8}-\d{6}) of DBInstance src created\n", out)
    assert named, out
    assert dbi.get(named.group(1), plural="dbsnapshots")["spec"]["deletionPolicy"] == "Retain"

    # No agent reports on kwok: the source's restorable window is written here as its agent would.
    now = datetime.now(UTC)
    window = {"earliestRestorableTime": rfc3339(now - timedelta(hours=2)),
              "latestRestorableTime": rfc3339(now - timedelta(minutes=5))}  # fmt: skip
    dbi.objects.patch_namespaced_custom_object_status(GROUP, VERSION, dbi.namespace, "dbinstances", "src",
                                                      {"status": window})  # fmt: skip
    moment = rfc3339(now - timedelta(hours=1))
    code, out, err = plugin("restore", "src", "--to", moment, "--as", "src-pitr")
    assert code == 0, err
    assert out == f"DBInstance src-pitr created, restoring from src at {moment}\n"
    restored = dbi.get("src-pitr")["spec"]
    point = restored["restore"]["pointInTime"]
    assert (point["source"], point["time"], point.get("latest", False)) == ("src", moment, False)
    assert (restored["engine"], restored["instanceClass"], restored["multiAZ"]) == ("postgres", "db.t3.small", True)
    assert (restored["storage"]["size"], restored["databaseName"], restored["masterUsername"]) == ("2Gi", "shop",
                                                                                                   "owner")  # fmt: skip
    assert restored["parameters"] == {"work_mem": "8MB"}
    assert restored["backup"]["retentionDays"] == 3
    store = restored["backup"]["objectStore"]
    assert (store["bucket"], store["endpoint"], store["credentialsSecretName"]) == (
        STORE["bucket"], STORE["endpoint"], STORE["credentialsSecretName"])  # fmt: skip
    assert not restored.get("deletionProtection"), "protection is the source's decision, not its shape"

    code, out, err = plugin("restore", "src", "--to", "latest", "--as", "src-latest")
    assert code == 0, err
    assert dbi.get("src-latest")["spec"]["restore"]["pointInTime"] == {"source": "src", "latest": True}

    code, out, err = plugin("restore", "--from-snapshot", "src-snap", "--as", "src-copy")
    assert code == 0, err
    assert "src-copy waits for it" in err, "the snapshot is not Available on kwok: said, and created anyway"
    copied = dbi.get("src-copy")["spec"]
    assert copied["restore"] == {"fromSnapshot": "src-snap"}
    assert (copied["engine"], copied["instanceClass"], copied["databaseName"]) == ("postgres", "db.t3.small", "shop")

    code, out, _ = plugin("restore", "src", "--to", "latest", "--as", "not-made", "--dry-run")
    assert code == 0 and yaml.safe_load(out)["kind"] == "DBInstance" and dbi.get("not-made") is None
    future = rfc3339(now + timedelta(hours=1))
    code, _, err = plugin("restore", "src", "--to", future, "--as", "too-soon")
    assert code == 1 and "is in the future" in err and dbi.get("too-soon") is None
    code, _, err = plugin("restore", "src", "--to", "latest", "--as", "src-pitr")
    assert (code, err) == (1, f"error: DBInstance src-pitr already exists in namespace {dbi.namespace}\n")


def test_promote_sets_the_replicas_spec(dbi: DBInstances, plugin: Plugin) -> None:
    dbi.create("src")
    replica = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReadReplica", "metadata": {"name": "src-rr"},
               "spec": {"source": {"dbInstance": "src"}}}  # fmt: skip
    dbi.objects.create_namespaced_custom_object(GROUP, VERSION, dbi.namespace, "readreplicas", replica)
    code, out, err = plugin("promote", "src-rr", "--yes")
    assert code == 0, err
    assert out.startswith("ReadReplica src-rr: promote requested")
    assert dbi.get("src-rr", plural="readreplicas")["spec"]["promote"] is True
    assert plugin("promote", "src-rr", "--yes")[1] == "ReadReplica src-rr is promoted already\n"
    code, _, err = plugin("promote", "src", "--yes")
    assert (code, err) == (1, f"error: ReadReplica src not found in namespace {dbi.namespace}\n")


def test_switchover_writes_the_request_the_operator_carries_out(dbi: DBInstances, plugin: Plugin) -> None:
    dbi.create("ha", multiAZ=True)
    dbi.create("ha2", multiAZ=True)
    dbi.wait_phase("ha", "Available")
    dbi.wait_phase("ha2", "Available")

    code, _, err = plugin("switchover", "ha", "--to", "elsewhere-0")
    assert code == 1 and "elsewhere-0 is not a member of DBInstance ha (its members: ha-0, ha-1)" in err
    assert SWITCHOVER not in (dbi.get("ha")["metadata"].get("annotations") or {})

    code, out, err = plugin("switchover", "ha", "--to", "ha-1")
    assert code == 0, err
    assert "to ha-1 requested (annotation requests.kuberds.io/switchover-to)" in out
    # kwok pods run no HA manager, so none is the primary: the operator refuses, says why in
    # an Event, and takes the request away (a request never lingers to fire later).
    refusal = wait_for(lambda: _operator_said(dbi, "ha", "SwitchoverRefused"), timeout=30,
                       what="the operator's answer to the switchover request")  # fmt: skip
    assert "switchover to ha-1: no member is the primary now" in refusal.message
    wait_for(lambda: SWITCHOVER not in (dbi.get("ha")["metadata"].get("annotations") or {}), timeout=10,
             what="the request removed")  # fmt: skip

    code, out, err = plugin("switchover", "ha2")
    assert code == 0, err
    refusal = wait_for(lambda: _operator_said(dbi, "ha2", "SwitchoverRefused"), timeout=30,
                       what="the operator's answer to the request for any member")  # fmt: skip
    assert refusal.message.startswith("switchover to any: ")


def _operator_said(dbi: DBInstances, name: str, reason: str) -> object | None:
    events = dbi.core.list_namespaced_event(dbi.namespace, field_selector=f"involvedObject.name={name}").items
    return next((e for e in events if e.reason == reason), None)


def test_report_holds_the_object_and_events_and_no_secret_value(dbi: DBInstances, plugin: Plugin,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    dbi.create("orders")
    dbi.wait_phase("orders", "Available")
    ns = dbi.namespace
    bundle = tmp_path / "orders.tar.gz"
    code, out, err = plugin("report", "orders", "-o", str(bundle))
    assert code == 0, err
    assert out.startswith(f"wrote {bundle} (") and out.rstrip().endswith("for DBInstance orders")

    with tarfile.open(bundle) as archive:
        files = {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers() if m.isfile()}
    root = next(iter(files)).split("/")[0]
    assert root.startswith(f"kuberds-report-{ns}-orders-")
    obj = yaml.safe_load(files[f"{root}/object.yaml"])
    assert (obj["kind"], obj["metadata"]["name"]) == ("DBInstance", "orders")
    for path in ("StatefulSet/orders", "Pod/orders-0", "Service/orders", "Service/orders-ro", "Service/orders-pods",
                 "ConfigMap/orders-settings", "PodDisruptionBudget/orders", "NetworkPolicy/orders",
                 "PersistentVolumeClaim/data-orders-0"):  # fmt: skip
        assert f"{root}/objects/{path}.yaml" in files, sorted(files)
    events = yaml.safe_load(files[f"{root}/events.yaml"])
    assert any(e["reason"] == "AllMembersReady" and e["involvedObject"]["name"] == "orders" for e in events)
    assert "AllMembersReady" in files[f"{root}/events.txt"] and "Members" in files[f"{root}/status.txt"]
    master = yaml.safe_load(files[f"{root}/secrets/orders-master.yaml"])
    assert master["data"] == {"password": "REDACTED", "username": "REDACTED"}

    # Every value of every Secret of the server (passwords, the TLS key), as text and in base64,
    # is in no file of the bundle.
    secrets = dbi.core.list_namespaced_secret(ns, label_selector="app.kubernetes.io/instance=orders").items
    assert {s.metadata.name for s in secrets} >= {"orders-master", "orders-agent-credentials", "orders-tls"}
    values = []
    for secret in secrets:
        for key, encoded in (secret.data or {}).items():
            if key not in ("username", "ca.crt", "tls.crt"):
                decoded = base64.b64decode(encoded).decode()
                lines = [line for line in decoded.splitlines() if len(line) > 20 and not line.startswith("-----")]
                values += [encoded, decoded, *lines]
    assert values
    for name, text in files.items():
        leaked = [v[:6] + "…" for v in values if v in text]
        assert not leaked, f"{name} holds secret values {leaked}"


def _roles_in_the_docs() -> dict[str, dict]:
    text = (ROOT / "docs" / "plugin.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    return {d["metadata"]["name"]: d for d in map(yaml.safe_load, blocks) if d.get("kind") == "Role"}


def _user(dbi: DBInstances, cluster: Cluster, tmp_path: Path, name: str, role: dict | None) -> Path:
    """A ServiceAccount bound to `role` (none: no rights at all), and a kubeconfig of it whose
    context names the namespace (the plugin's default then)."""
    ns = dbi.namespace
    dbi.core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    if role is not None:
        rbac = kubernetes.client.RbacAuthorizationV1Api(dbi.core.api_client)
        rbac.create_namespaced_role(ns, {**role, "metadata": {"name": role["metadata"]["name"]}})
        rbac.create_namespaced_role_binding(ns, {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})  # fmt: skip
    path = token_kubeconfig(cluster, name, ns, tmp_path / f"{name}.kubeconfig", name)
    config = yaml.safe_load(path.read_text())
    config["contexts"][0]["context"]["namespace"] = ns
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_viewer_role_of_the_docs_is_enough_to_look_and_no_more(dbi: DBInstances, cluster: Cluster,
                                                                   capsys: pytest.CaptureFixture,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    dbi.create("orders")
    dbi.wait_phase("orders", "Available")
    ns = dbi.namespace
    viewer = Plugin(capsys, _user(dbi, cluster, tmp_path, "viewer", _roles_in_the_docs()["kuberds-viewer"]), None)

    def allowed() -> bool:  # RBAC takes a moment to reach the authorizer's cache
        return viewer("status", "orders")[0] == 0

    wait_for(allowed, timeout=20, what="the viewer Role to apply")
    code, out, err = viewer("status", "orders")
    assert code == 0 and out.startswith(f"DBInstance orders (namespace {ns})"), err
    code, out, err = viewer("report", "orders", "-o", str(tmp_path / "viewer.tar.gz"))
    assert code == 0, err
    assert "secrets: forbidden: you may not list secrets" in err, "the bundle says what it left out"
    with tarfile.open(tmp_path / "viewer.tar.gz") as archive:
        names = archive.getnames()
    assert any(n.endswith("/object.yaml") for n in names) and not any("/secrets/" in n for n in names)
    code, out, err = viewer("pause", "orders")
    assert code == 1 and out == ""
    assert err.startswith(f"error: forbidden: you may not patch dbinstances.kuberds.io in namespace {ns}; a Role "
                          "granting verb 'patch' on dbinstances.kuberds.io is needed")  # fmt: skip
    assert dbi.get("orders")["spec"].get("automationPaused") is not True

    nobody = Plugin(capsys, _user(dbi, cluster, tmp_path, "nobody", None), None)
    code, _, err = nobody("status", "orders")
    assert code == 1
    assert err.startswith(f"error: forbidden: you may not get dbinstances.kuberds.io in namespace {ns}")
