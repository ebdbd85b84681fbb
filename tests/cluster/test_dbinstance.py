"""The operator reconciling PostgreSQL DBInstances on the real control plane (pods on kwok)."""

from __future__ import annotations

import base64
import json

import kubernetes
import pytest
from cryptography import x509
from kubernetes.client.rest import ApiException

from tests.cluster.conftest import FINAL_SNAPSHOT_TIMEOUT
from tests.support.dbinstances import GROUP, STORE, VERSION, DBInstances, agent_json, owned_by, store_credentials
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster
ZONE = "topology.kubernetes.io/zone"


def test_instance_becomes_expected_objects(dbi: DBInstances, api) -> None:
    created = dbi.create("orders")
    uid = created["metadata"]["uid"]
    dbi.wait_phase("orders", "Available")
    ns = dbi.namespace
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    policy, net = kubernetes.client.PolicyV1Api(api), kubernetes.client.NetworkingV1Api(api)
    objects = [
        dbi.core.read_namespaced_secret("orders-master", ns),
        dbi.core.read_namespaced_config_map("orders-settings", ns),
        dbi.core.read_namespaced_service("orders", ns),
        dbi.core.read_namespaced_service("orders-ro", ns),
        dbi.core.read_namespaced_service("orders-pods", ns),
        dbi.core.read_namespaced_service_account("orders-agent", ns),
        rbac.read_namespaced_role("orders-agent", ns),
        rbac.read_namespaced_role_binding("orders-agent", ns),
        dbi.apps.read_namespaced_stateful_set("orders", ns),
        policy.read_namespaced_pod_disruption_budget("orders", ns),
        net.read_namespaced_network_policy("orders", ns),
    ]
    for obj in objects:
        assert owned_by(obj, uid), f"{obj.kind} {obj.metadata.name} lacks the owner reference"
        labels = obj.metadata.labels
        assert labels["app.kubernetes.io/managed-by"] == "kuberds"
        assert labels["app.kubernetes.io/instance"] == "orders"
        assert labels["app.kubernetes.io/name"] == "postgres"

    sts = objects[8]
    assert sts.spec.replicas == 1
    assert sts.spec.persistent_volume_claim_retention_policy.when_deleted == "Retain"
    container = sts.spec.template.spec.containers[0]
    assert container.resources.requests == {"cpu": "250m", "memory": "1Gi"}  # db.t3.micro
    assert container.readiness_probe.http_get.path == "/readiness"
    assert sts.spec.template.spec.security_context.run_as_non_root is True
    writer = objects[2]
    assert writer.spec.selector is None, "its EndpointSlice follows the leader lease (kuberds writes it)"

    status = dbi.get("orders")["status"]
    assert status["endpoint"] == f"orders.{ns}.svc:5432"
    assert status["readerEndpoint"] == f"orders-ro.{ns}.svc:5432"
    assert status["observedGeneration"] == 1
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Available", "Reconciled"}
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in status["conditions"])
    events = dbi.core.list_namespaced_event(ns, field_selector="involvedObject.name=orders").items
    assert any(e.reason == "AllMembersReady" for e in events)


def test_multi_az_pods_land_in_different_zones(dbi: DBInstances) -> None:
    dbi.create("ha", multiAZ=True)
    status = dbi.wait_phase("ha", "Available")["status"]
    zones = [m["zone"] for m in status["members"]]
    assert len(zones) == 2 and len(set(zones)) == 2, status["members"]
    assert status["readyInstances"] == 2
    spread = dbi.apps.read_namespaced_stateful_set("ha", dbi.namespace).spec.template.spec
    assert spread.topology_spread_constraints[0].when_unsatisfiable == "DoNotSchedule"


def test_master_secret_is_created_once_and_never_rewritten(dbi: DBInstances) -> None:
    dbi.create("keep")
    dbi.wait_phase("keep", "Available")
    before = dbi.core.read_namespaced_secret("keep-master", dbi.namespace)
    password = base64.b64decode(before.data["password"]).decode()
    assert len(password) >= 24 and base64.b64decode(before.data["username"]) == b"dbadmin"

    # Spec changes and a full reconcile later, the secret is untouched.
    dbi.patch("keep", {"parameters": {"work_mem": "8MB"}})
    dbi.wait_condition("keep", "Reconciled", "True")
    wait_for(lambda: dbi.condition("keep", "Reconciled")["observedGeneration"] == 2, what="generation 2 reconciled")
    after = dbi.core.read_namespaced_secret("keep-master", dbi.namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data
    config = dbi.core.read_namespaced_config_map("keep-settings", dbi.namespace)
    assert json.loads(config.data["agent.json"])["parameters"]["work_mem"] == "8MB"


def test_hand_edits_of_the_writer_service_are_undone(dbi: DBInstances) -> None:
    dbi.create("drift")
    dbi.wait_phase("drift", "Available")
    ns = dbi.namespace
    edited = dbi.core.read_namespaced_service("drift", ns)
    edited.spec.selector = {"hijacked": "yes"}
    edited.spec.ports[0].port = 6000
    dbi.core.replace_namespaced_service("drift", ns, edited)

    def restored():
        svc = dbi.core.read_namespaced_service("drift", ns)
        return not svc.spec.selector and svc.spec.ports[0].port == 5432 and svc

    wait_for(restored, timeout=20, what="the writer Service to be restored (no selector: kuberds routes it)")

    dbi.core.delete_namespaced_service("drift-ro", ns)
    wait_for(lambda: dbi.core.list_namespaced_service(ns, field_selector="metadata.name=drift-ro").items,
             timeout=20, what="the deleted reader Service to come back")  # fmt: skip


def test_deletion_protection_is_enforced_by_the_api_server(dbi: DBInstances) -> None:
    dbi.create("guarded", deletionProtection=True)
    with pytest.raises(ApiException) as refused:
        dbi.delete("guarded")
    assert refused.value.status == 403
    assert "deletionProtection" in refused.value.body and "kubectl patch" in refused.value.body
    assert dbi.get("guarded") is not None


def test_delete_takes_a_final_snapshot_and_keeps_volumes(dbi: DBInstances) -> None:
    dbi.create("doomed")
    dbi.wait_phase("doomed", "Available")
    dbi.delete("doomed")

    status = wait_for(lambda: (dbi.get("doomed") or {}).get("status", {}).get("finalSnapshot") and
                      dbi.get("doomed")["status"], what="a final snapshot name in status")  # fmt: skip
    snapshot = dbi.get(status["finalSnapshot"], plural="dbsnapshots")
    assert snapshot["spec"]["source"] == {"dbInstance": "doomed"}
    assert snapshot["metadata"]["labels"]["kuberds.io/snapshot-kind"] == "final"
    assert not snapshot["metadata"].get("ownerReferences"), "a final snapshot must outlive its instance"
    assert status["phase"] == "Deleting"

    # The snapshot cannot complete yet (no data plane): the wait surfaces as a condition.
    dbi.wait_condition("doomed", "FinalSnapshot", "False", "TimedOut", timeout=FINAL_SNAPSHOT_TIMEOUT + 90)
    assert dbi.get("doomed") is not None, "the instance must stay until its final snapshot exists"

    dbi.patch("doomed", {"skipFinalSnapshot": True})
    wait_for(lambda: dbi.get("doomed") is None, timeout=60, what="the instance to go")
    claims = dbi.core.list_namespaced_persistent_volume_claim(dbi.namespace).items
    assert [c.metadata.name for c in claims] == ["data-doomed-0"], "volumes are retained"
    assert dbi.get(status["finalSnapshot"], plural="dbsnapshots") is not None


def test_skip_final_snapshot_deletes_at_once(dbi: DBInstances) -> None:
    dbi.create("quick", skipFinalSnapshot=True)
    dbi.wait_phase("quick", "Available")
    dbi.delete("quick")
    wait_for(lambda: dbi.get("quick") is None, timeout=30, what="the instance to go")
    snapshots = dbi.objects.list_namespaced_custom_object(GROUP, VERSION, dbi.namespace, "dbsnapshots")["items"]
    assert snapshots == []


def test_storage_grows_in_place_when_the_class_allows(dbi: DBInstances) -> None:
    dbi.create("grow", storage={"size": "20Gi", "storageClassName": "standard"})
    dbi.wait_phase("grow", "Available")
    pod = dbi.core.read_namespaced_pod("grow-0", dbi.namespace)
    dbi.patch("grow", {"storage": {"size": "50Gi"}})
    dbi.wait_condition("grow", "StorageResized", "True")
    claim = dbi.core.read_namespaced_persistent_volume_claim("data-grow-0", dbi.namespace)
    assert claim.spec.resources.requests["storage"] == "50Gi"
    storage = dbi.get("grow")["status"]["storage"]
    assert (storage["requested"], storage["allocated"]) == ("50Gi", "50Gi") and storage["lastGrowTime"]
    # The StatefulSet is made again with 50Gi claim templates, for members made later; the
    # running pod stays (same uid) under the new StatefulSet.
    wait_for(lambda: claim_template("grow", dbi) == "50Gi", timeout=30, what="the claim template at 50Gi")
    pod_now = dbi.core.read_namespaced_pod("grow-0", dbi.namespace)
    assert pod_now.metadata.uid == pod.metadata.uid
    wait_for(lambda: [o.kind for o in dbi.core.read_namespaced_pod("grow-0", dbi.namespace).metadata.owner_references
                      or []] == ["StatefulSet"], timeout=30, what="the pod adopted by the new StatefulSet")  # fmt: skip
    events = dbi.core.list_namespaced_event(dbi.namespace, field_selector="reason=VolumeTemplateUpdated").items
    assert any("grow" in e.message and "50Gi" in e.message for e in events)


def claim_template(name: str, dbi: DBInstances) -> str | None:
    try:
        sts = dbi.apps.read_namespaced_stateful_set(name, dbi.namespace)
    except ApiException:
        return None
    return sts.spec.volume_claim_templates[0].spec.resources.requests["storage"]


def test_storage_that_cannot_expand_says_so(dbi: DBInstances) -> None:
    dbi.create("stuck", storage={"size": "20Gi", "storageClassName": "fixed"})
    dbi.wait_phase("stuck", "Available")
    dbi.patch("stuck", {"storage": {"size": "50Gi"}})
    condition = dbi.wait_condition("stuck", "StorageResized", "False", "ExpansionNotSupported")
    assert "fixed" in condition["message"]
    claim = dbi.core.read_namespaced_persistent_volume_claim("data-stuck-0", dbi.namespace)
    assert claim.spec.resources.requests["storage"] == "20Gi"


def test_resource_change_rolls_the_pods(dbi: DBInstances) -> None:
    dbi.create("roll", multiAZ=True)
    dbi.wait_phase("roll", "Available")
    dbi.patch("roll", {"instanceClass": "db.t3.medium"})

    def rolled():
        pods = dbi.core.list_namespaced_pod(dbi.namespace, label_selector="app.kubernetes.io/instance=roll").items
        fresh = [p for p in pods if p.spec.containers[0].resources.requests.get("memory") == "4Gi"
                 and p.status.phase == "Running" and not p.metadata.deletion_timestamp]  # fmt: skip
        return len(fresh) == 2

    wait_for(rolled, timeout=90, what="both pods replaced with db.t3.medium resources")
    dbi.wait_phase("roll", "Available")
    events = dbi.core.list_namespaced_event(dbi.namespace, field_selector="reason=RollingUpdate").items
    assert len(events) >= 1


def test_paused_automation_changes_nothing(dbi: DBInstances) -> None:
    dbi.create("hands-off")
    dbi.wait_phase("hands-off", "Available")
    dbi.patch("hands-off", {"automationPaused": True, "instanceClass": "db.m6.large"})
    dbi.wait_phase("hands-off", "Paused")
    assert dbi.condition("hands-off", "Paused")["status"] == "True"
    sts = dbi.apps.read_namespaced_stateful_set("hands-off", dbi.namespace)
    assert sts.spec.template.spec.containers[0].resources.requests["memory"] == "1Gi"

    dbi.patch("hands-off", {"automationPaused": False})
    wait_for(lambda: dbi.apps.read_namespaced_stateful_set("hands-off", dbi.namespace)
             .spec.template.spec.containers[0].resources.requests["memory"] == "8Gi",
             what="the class change to apply once resumed")  # fmt: skip


def test_missing_master_secret_is_a_condition_not_a_crash(dbi: DBInstances) -> None:
    dbi.create("byo", masterUserSecretName="byo-credentials")
    condition = dbi.wait_condition("byo", "Reconciled", "False", "SecretNotFound")
    assert "byo-credentials" in condition["message"]
    events = dbi.core.list_namespaced_event(dbi.namespace, field_selector="reason=SecretNotFound").items
    assert events and events[0].type == "Warning"
    assert not dbi.apps.list_namespaced_stateful_set(dbi.namespace).items, "nothing is built without it"

    dbi.core.create_namespaced_secret(dbi.namespace, {"metadata": {"name": "byo-credentials"},
                                                      "stringData": {"password": "correct-horse"}})  # fmt: skip
    dbi.wait_phase("byo", "Available", timeout=90)
    assert not dbi.core.list_namespaced_secret(dbi.namespace, field_selector="metadata.name=byo-master").items


def _certificate(secret, key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret.data[key]))


def test_client_tls_is_issued_for_the_endpoints_and_reissued_from_the_same_ca(dbi: DBInstances) -> None:
    created = dbi.create("secure")
    dbi.wait_phase("secure", "Available")
    ns, uid = dbi.namespace, created["metadata"]["uid"]
    ca_secret = dbi.core.read_namespaced_secret("secure-ca", ns)
    served = dbi.core.read_namespaced_secret("secure-tls", ns)
    assert owned_by(ca_secret, uid) and owned_by(served, uid)
    assert served.type == "kubernetes.io/tls" and "ca.key" not in served.data, "the CA's key stays in secure-ca"
    ca = _certificate(ca_secret, "ca.crt")
    certificate = _certificate(served, "tls.crt")
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {f"secure.{ns}.svc", f"secure-ro.{ns}.svc", f"*.secure-pods.{ns}.svc"} <= set(
        names.get_values_for_type(x509.DNSName))  # fmt: skip
    assert base64.b64decode(served.data["ca.crt"]) == base64.b64decode(ca_secret.data["ca.crt"])
    assert dbi.get("secure")["status"]["certificateSecretName"] == "secure-tls"
    template = dbi.apps.read_namespaced_stateful_set("secure", ns).spec.template.spec
    assert next(v for v in template.volumes if v.name == "tls").secret.secret_name == "secure-tls"
    events = dbi.core.list_namespaced_event(ns, field_selector="involvedObject.name=secure,reason=CertificateIssued")
    assert events.items

    # Lost (deleted by hand): the next pass issues a new one from the same CA, so clients that
    # pinned the CA keep verifying.
    dbi.core.delete_namespaced_secret("secure-tls", ns)
    dbi.patch("secure", {"tls": {"require": True}})
    again = wait_for(lambda: _read_secret(dbi, "secure-tls"), timeout=60, what="secure-tls issued again")
    reissued = _certificate(again, "tls.crt")
    reissued.verify_directly_issued_by(ca)
    assert reissued.serial_number != certificate.serial_number


def _read(read, name: str, namespace: str):
    """The object, or None when there is none."""
    try:
        return read(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _read_secret(dbi: DBInstances, name: str):
    return _read(dbi.core.read_namespaced_secret, name, dbi.namespace)


def test_a_missing_certificate_secret_is_a_condition(dbi: DBInstances) -> None:
    dbi.create("corp", tls={"certificateSecretName": "corp-cert"})
    condition = dbi.wait_condition("corp", "Reconciled", "False", "SecretNotFound")
    assert "corp-cert" in condition["message"] and "tls.certificateSecretName" in condition["message"]
    assert not dbi.apps.list_namespaced_stateful_set(dbi.namespace).items


def test_restore_from_a_missing_snapshot_is_a_condition(dbi: DBInstances) -> None:
    dbi.create("restored", restore={"fromSnapshot": "no-such-snapshot"})
    condition = dbi.wait_condition("restored", "Reconciled", "False", "SnapshotNotFound")
    assert "no-such-snapshot" in condition["message"]
    assert dbi.get("restored")["status"]["phase"] == "Failed"
    assert not dbi.apps.list_namespaced_stateful_set(dbi.namespace).items


def test_operator_exposes_metrics(dbi: DBInstances, operator) -> None:
    dbi.create("measured")
    dbi.wait_phase("measured", "Available")
    text = operator.metrics()
    assert 'kuberds_reconcile_total{kind="DBInstance",result="ok"}' in text
    assert "kuberds_reconcile_duration_seconds_bucket" in text
    assert 'kuberds_api_requests_total{method="PATCH"}' in text


def test_a_private_ca_of_the_object_store_reaches_the_agent(dbi: DBInstances) -> None:
    store = {**STORE, "caSecretName": "store-ca"}
    store_credentials(dbi)
    dbi.create("private", backup={"objectStore": store})
    condition = dbi.wait_condition("private", "Reconciled", "False", "SecretNotFound")
    assert "store-ca" in condition["message"] and "backup.objectStore.caSecretName" in condition["message"]
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    dbi.core.create_namespaced_secret(dbi.namespace, {"metadata": {"name": "store-ca"}, "stringData": {"ca.crt": pem}})
    dbi.wait_condition("private", "Reconciled", "True", timeout=90)
    assert agent_json(dbi, "private")["backup"]["repository"]["store"]["ca_bundle"] == pem


def test_backups_and_restores_are_planned_for_the_agent(dbi: DBInstances) -> None:
    """What the operator hands the agent: its repository (keyed by uid), its secrets by
    reference, and for a restore the source's repository and key; a snapshot that is not
    Available yet holds a restore back with a condition."""
    store_credentials(dbi)
    source = dbi.create("src", backup={"objectStore": STORE})
    dbi.wait_condition("src", "Reconciled", "True")
    plan = agent_json(dbi, "src")["backup"]
    assert plan["repository"]["path"] == f"/kuberds/{dbi.namespace}/src/{source['metadata']['uid']}"
    key = dbi.core.read_namespaced_secret("src-backup-key", dbi.namespace)
    assert not key.metadata.owner_references, "the passphrase outlives the server"
    credentials = dbi.core.read_namespaced_secret("src-agent-credentials", dbi.namespace)
    assert owned_by(credentials, source["metadata"]["uid"])

    # No agent reports on kwok: the source's restorable window is written here as its agent would.
    dbi.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        dbi.namespace,
        "dbinstances",
        "src",
        {"status": {"earliestRestorableTime": "2026-11-27T09:00:00Z", "latestRestorableTime": "2026-11-27T11:00:00Z"}},
    )
    dbi.create("restored", backup={"objectStore": STORE},
               restore={"pointInTime": {"source": "src", "time": "2026-11-27T10:00:00Z"}})  # fmt: skip
    dbi.wait_condition("restored", "Reconciled", "True")
    restore = agent_json(dbi, "restored")["restore"]
    assert restore["repository"]["path"] == plan["repository"]["path"], "reads the source's repository"
    assert restore["target_time"] == "2026-11-27T10:00:00Z"
    pod = dbi.apps.read_namespaced_stateful_set("restored", dbi.namespace).spec.template.spec
    env = {e.name: e for e in pod.containers[0].env}
    assert env["KUBERDS_RESTORE_CIPHER_PASS"].value_from.secret_key_ref.name == "src-backup-key"
    assert env["KUBERDS_BACKUP_CIPHER_PASS"].value_from.secret_key_ref.name == "restored-backup-key"

    dbi.objects.create_namespaced_custom_object(GROUP, VERSION, dbi.namespace, "dbsnapshots", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DBSnapshot", "metadata": {"name": "snap"},
        "spec": {"source": {"dbInstance": "src"}}})  # fmt: skip
    snap = wait_for(lambda: ((dbi.get("snap", plural="dbsnapshots") or {}).get("status") or {}).get("phase"),
                    what="snapshot phase")  # fmt: skip
    assert snap == "Pending", "no agent runs on kwok: the snapshot waits for one"
    dbi.create("from-snap", restore={"fromSnapshot": "snap"})
    dbi.wait_condition("from-snap", "Reconciled", "False", "SnapshotNotAvailable")
    built = dbi.apps.list_namespaced_stateful_set(dbi.namespace, label_selector="app.kubernetes.io/instance=from-snap")
    assert built.items == [], "nothing is built before the snapshot exists"


def _deployment(dbi: DBInstances, name: str):
    return _read(dbi.apps.read_namespaced_deployment, name, dbi.namespace)


def test_a_proxy_is_made_when_asked_says_when_it_is_ready_and_goes_when_turned_off(dbi: DBInstances, api) -> None:
    created = dbi.create("pooled", proxy={"enabled": True, "readerEndpoint": True})
    ns, uid = dbi.namespace, created["metadata"]["uid"]
    dbi.wait_phase("pooled", "Available")
    # The condition turns True with the first ready proxy pod; the second follows.
    wait_for(lambda: (dbi.condition("pooled", "ProxyReady") or {}).get("message") == "2 of 2 proxy pods ready",
             timeout=30, what="both proxy pods ready")  # fmt: skip
    assert dbi.get("pooled")["status"]["proxyEndpoint"] == f"pooled-proxy.{ns}.svc:5432"
    assert dbi.get("pooled")["status"]["proxyReaderEndpoint"] == f"pooled-proxy-ro.{ns}.svc:5432"
    policy, net = kubernetes.client.PolicyV1Api(api), kubernetes.client.NetworkingV1Api(api)
    for obj in (_deployment(dbi, "pooled-proxy"), dbi.core.read_namespaced_service("pooled-proxy", ns),
                dbi.core.read_namespaced_config_map("pooled-proxy", ns),
                policy.read_namespaced_pod_disruption_budget("pooled-proxy", ns),
                net.read_namespaced_network_policy("pooled-proxy", ns)):  # fmt: skip
        assert owned_by(obj, uid) and obj.metadata.labels["app.kubernetes.io/component"] == "proxy"
    # The proxy serves the server's certificate: it names the proxy's Service too.
    names = _certificate(dbi.core.read_namespaced_secret("pooled-tls", ns), "tls.crt").extensions
    dns = names.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"pooled-proxy.{ns}.svc" in dns
    # The proxy's pods are not members: status counts the database pods only.
    wait_for(lambda: [m["name"] for m in dbi.get("pooled")["status"]["members"]] == ["pooled-0"], timeout=10,
             what=f"the database pod alone in members: {dbi.get('pooled')['status']}")  # fmt: skip

    assert _deployment(dbi, "pooled-proxy-ro") is not None
    dbi.patch("pooled", {"proxy": {"readerEndpoint": False}})
    wait_for(lambda: _deployment(dbi, "pooled-proxy-ro") is None, timeout=60, what="the read-only proxy deleted")
    assert _deployment(dbi, "pooled-proxy") is not None, "the writer's proxy stays"
    wait_for(lambda: "proxyReaderEndpoint" not in dbi.get("pooled")["status"], timeout=30, what="its endpoint gone")
    dbi.patch("pooled", {"proxy": {"enabled": False}})
    # The Deployment is deleted last (the next pass finishes a removal only while it is there).
    wait_for(lambda: _deployment(dbi, "pooled-proxy") is None, timeout=60, what="the proxy's Deployment deleted")
    gone = dbi.wait_condition("pooled", "ProxyReady", "False", "ProxyDisabled")
    assert gone["observedGeneration"] == dbi.get("pooled")["metadata"]["generation"]
    assert "proxyEndpoint" not in dbi.get("pooled")["status"]
    for read in (dbi.core.read_namespaced_service, dbi.core.read_namespaced_config_map,
                 policy.read_namespaced_pod_disruption_budget, net.read_namespaced_network_policy):  # fmt: skip
        for proxy in ("pooled-proxy", "pooled-proxy-ro"):
            assert _read(read, proxy, ns) is None, f"{read.__name__} {proxy}"
