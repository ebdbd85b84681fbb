"""Bad input the schema cannot judge, against the real API server and operator: each class
gets a condition (reason and message) and an Event within seconds, and nothing else is
touched. (What the schema refuses is in test_api_validation.py.)"""

from __future__ import annotations

import uuid

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.dbinstances import GROUP, STORE, VERSION, DBInstances, owned_by, store_credentials
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster


def warning_events(dbi: DBInstances, name: str, reason: str) -> list:
    selector = f"involvedObject.name={name},reason={reason},type=Warning"
    return dbi.core.list_namespaced_event(dbi.namespace, field_selector=selector).items


def stateful_sets(dbi: DBInstances, name: str) -> list:
    selector = f"app.kubernetes.io/instance={name}"
    return dbi.apps.list_namespaced_stateful_set(dbi.namespace, label_selector=selector).items


def test_a_server_named_like_another_servers_service_is_refused_not_merged(dbi: DBInstances) -> None:
    shop = dbi.create("shop")
    dbi.wait_phase("shop", "Available")
    reader = dbi.core.read_namespaced_service("shop-ro", dbi.namespace)
    dbi.create("shop-ro")
    condition = dbi.wait_condition("shop-ro", "Reconciled", "False", "NameConflict")
    assert "Service shop-ro already exists and it belongs to DBInstance shop" in condition["message"]
    assert wait_for(lambda: warning_events(dbi, "shop-ro", "NameConflict"), what="a NameConflict Event")
    after = dbi.core.read_namespaced_service("shop-ro", dbi.namespace)
    assert owned_by(after, shop["metadata"]["uid"]) and len(after.metadata.owner_references) == 1
    assert after.spec.selector == reader.spec.selector, "the reader Service still routes to shop's replicas"
    assert not stateful_sets(dbi, "shop-ro"), "nothing of shop-ro was made"


def test_a_users_own_object_of_the_same_name_is_not_taken_over(dbi: DBInstances) -> None:
    dbi.core.create_namespaced_service(dbi.namespace, {
        "metadata": {"name": "billing", "labels": {"team": "web"}},
        "spec": {"selector": {"app": "billing-web"}, "ports": [{"port": 80}]}})  # fmt: skip
    dbi.create("billing")
    condition = dbi.wait_condition("billing", "Reconciled", "False", "NameConflict")
    assert "Service billing already exists and kuberds did not make it for this server" in condition["message"]
    service = dbi.core.read_namespaced_service("billing", dbi.namespace)
    assert not service.metadata.owner_references, "not owned: garbage collection would delete it with the server"
    assert service.spec.selector == {"app": "billing-web"} and service.metadata.labels == {"team": "web"}
    assert not stateful_sets(dbi, "billing")


def test_a_missing_object_store_secret_is_a_condition_naming_it(dbi: DBInstances) -> None:
    dbi.create("archived", backup={"objectStore": {**STORE, "credentialsSecretName": "no-such-keys"}})
    condition = dbi.wait_condition("archived", "Reconciled", "False", "SecretNotFound")
    assert "Secret no-such-keys (backup.objectStore.credentialsSecretName) does not exist" in condition["message"]
    assert warning_events(dbi, "archived", "SecretNotFound")
    assert not stateful_sets(dbi, "archived")
    dbi.core.create_namespaced_secret(dbi.namespace, {"metadata": {"name": "no-such-keys"},
                                                      "stringData": {"AWS_ACCESS_KEY_ID": "x"}})  # fmt: skip
    condition = dbi.wait_condition("archived", "Reconciled", "False", "SecretInvalid")
    assert "no-such-keys" in condition["message"] and "AWS_SECRET_ACCESS_KEY" in condition["message"]


def test_a_point_in_time_outside_the_sources_window_is_refused_at_once(dbi: DBInstances) -> None:
    store_credentials(dbi)
    dbi.create("ledger", backup={"objectStore": STORE})
    dbi.wait_condition("ledger", "Reconciled", "True")
    # No agent reports on kwok: the window is written as the source's agent would.
    dbi.objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        dbi.namespace,
        "dbinstances",
        "ledger",
        {"status": {"earliestRestorableTime": "2026-11-27T09:00:00Z", "latestRestorableTime": "2026-11-27T11:00:00Z"}},
    )
    cases = (("early", "2026-11-20T00:00:00Z", "RestoreTimeOutOfRange", "before the earliest restorable time"),
             ("late", "2099-01-01T00:00:00Z", "RestoreTimeInFuture", "is in the future"))  # fmt: skip
    for name, time, _, _ in cases:
        dbi.create(name, restore={"pointInTime": {"source": "ledger", "time": time}})
    for name, time, reason, words in cases:
        condition = dbi.wait_condition(name, "Reconciled", "False", reason)
        assert time in condition["message"] and words in condition["message"]
        assert dbi.get(name)["status"]["phase"] == "Failed" and not stateful_sets(dbi, name)


def test_a_snapshot_being_restored_from_is_kept_until_the_restore_is_done(dbi: DBInstances) -> None:
    store_credentials(dbi)
    dbi.create("origin", backup={"objectStore": STORE})
    dbi.wait_condition("origin", "Reconciled", "True")
    dbi.objects.create_namespaced_custom_object(GROUP, VERSION, dbi.namespace, "dbsnapshots", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DBSnapshot", "metadata": {"name": "nightly"},
        "spec": {"source": {"dbInstance": "origin"}}})  # fmt: skip
    wait_for(lambda: (dbi.get("nightly", plural="dbsnapshots").get("status") or {}).get("phase"), what="Pending")
    # What origin's agent writes once the backup is taken (no agent runs on kwok).
    taken = {"phase": "Available", "backupID": "20261127-100000F", "snapshotTime": "2026-11-27T10:00:00Z"}
    dbi.objects.patch_namespaced_custom_object_status(GROUP, VERSION, dbi.namespace, "dbsnapshots", "nightly",
                                                      {"status": taken})  # fmt: skip
    dbi.create("copy", restore={"fromSnapshot": "nightly"})
    dbi.wait_condition("copy", "Restored", "False", "Restoring")

    dbi.objects.delete_namespaced_custom_object(GROUP, VERSION, dbi.namespace, "dbsnapshots", "nightly")

    def held() -> dict | None:
        snap = dbi.get("nightly", plural="dbsnapshots") or {}
        return next((c for c in (snap.get("status") or {}).get("conditions", []) if c["reason"] == "InUse"), None)

    condition = wait_for(held, what="the snapshot held for the restore")
    assert "DBInstance copy is being restored from this snapshot" in condition["message"]
    assert dbi.get("nightly", plural="dbsnapshots")["status"]["phase"] == "Available", "no removal approved yet"

    dbi.release("copy")
    dbi.delete("copy")
    wait_for(lambda: dbi.get("nightly", plural="dbsnapshots")["status"]["phase"] == "Deleting",
             what="the removal approved once no restore reads it")  # fmt: skip
    approval = next(c for c in dbi.get("nightly", plural="dbsnapshots")["status"]["conditions"]
                    if c["type"] == "RemovalApproved")  # fmt: skip
    assert approval["status"] == "True"
    # What origin's agent writes once it has removed the backup: the object goes.
    dbi.objects.patch_namespaced_custom_object_status(GROUP, VERSION, dbi.namespace, "dbsnapshots", "nightly",
                                                      {"status": {"phase": "Deleted", "backupID": None}})  # fmt: skip
    wait_for(lambda: dbi.get("nightly", plural="dbsnapshots") is None, what="the DBSnapshot gone")


def test_a_refusal_by_the_api_server_is_an_event_and_a_condition(dbi: DBInstances) -> None:
    """A quota that leaves room for one Service: the second is refused (403), which no
    condition foresees; it must not stay in the operator's log alone."""
    dbi.core.create_namespaced_resource_quota(dbi.namespace, {"metadata": {"name": "one-service"},
                                                              "spec": {"hard": {"services": "1"}}})  # fmt: skip
    dbi.create("quota")
    condition = dbi.wait_condition("quota", "Reconciled", "False", "ReconcileFailed")
    assert "exceeded quota" in condition["message"]
    events = wait_for(lambda: warning_events(dbi, "quota", "ReconcileFailed"), what="a ReconcileFailed Event")
    assert "exceeded quota" in events[0].message


def test_a_namespace_being_deleted_says_why_there_is_no_final_snapshot(api, operator) -> None:
    core = kubernetes.client.CoreV1Api(api)
    namespace = f"t-doomed-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"kuberds.io/test": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
             what="the default ServiceAccount")  # fmt: skip
    dbi = DBInstances(api, namespace)
    dbi.create("doomed")
    dbi.wait_phase("doomed", "Available")
    core.delete_namespace(namespace)
    condition = dbi.wait_condition("doomed", "FinalSnapshot", "False", "NamespaceTerminating")
    assert "skipFinalSnapshot" in condition["message"]
    dbi.patch("doomed", {"skipFinalSnapshot": True})

    def gone() -> bool:
        try:
            core.read_namespace(namespace)
            return False
        except ApiException as error:
            return error.status == 404

    wait_for(gone, timeout=120, what=f"namespace {namespace} gone")
    tracebacks = [line for line in operator.log.read_text().splitlines() if namespace in line and "Forbidden" in line]
    assert not tracebacks, "\n".join(tracebacks[:5])


def test_a_parameter_value_the_engine_would_refuse_is_named(dbi: DBInstances) -> None:
    """The schema takes the name (on the allow-list); the operator judges the value by its
    type and range, before it reaches a configuration file."""
    dbi.create("tuned", parameters={"work_mem": "lots", "max_connections": "300000", "statement_timeout": "30s"})
    condition = dbi.wait_condition("tuned", "Reconciled", "False", "InvalidParameter")
    assert "parameters.work_mem: 'lots' is not a number" in condition["message"]
    assert "parameters.max_connections: 300000 is above the maximum, 262143" in condition["message"]
    assert "statement_timeout" not in condition["message"]
    assert warning_events(dbi, "tuned", "InvalidParameter") and not stateful_sets(dbi, "tuned")
    dbi.patch("tuned", {"parameters": {"work_mem": "64MB", "max_connections": "200"}})
    dbi.wait_condition("tuned", "Reconciled", "True")


def test_a_pool_larger_than_the_server_can_serve_is_named_and_not_deployed(dbi: DBInstances) -> None:
    """The schema cannot know the instance class's connections; the operator can."""
    dbi.create("crowded", proxy={"enabled": True, "defaultPoolSize": 500})
    condition = dbi.wait_condition("crowded", "ProxyReady", "False", "InvalidProxy")
    assert "proxy.defaultPoolSize 500 is above the 102 connections the server can give" in condition["message"]
    assert wait_for(lambda: warning_events(dbi, "crowded", "InvalidProxy"), what="an InvalidProxy Event")
    dbi.wait_phase("crowded", "Available")  # the server itself is fine
    deployments = dbi.apps.list_namespaced_deployment(
        dbi.namespace, label_selector="app.kubernetes.io/instance=crowded"
    )
    assert deployments.items == []
    dbi.patch("crowded", {"proxy": {"defaultPoolSize": 50}})
    dbi.wait_condition("crowded", "ProxyReady", "True")
