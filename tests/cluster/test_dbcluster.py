"""DBClusters on the real control plane (pods on kwok): members, Services without selectors
whose EndpointSlices follow the leader lease, the scale subresource, tiers in status, and
bad input. No HA manager runs on kwok, so the tests write the leader object the way Patroni's
Kubernetes DCS does (a ConfigMap NAME-leader with a `leader` annotation)."""

from __future__ import annotations

import time

import kubernetes
import pytest

from tests.support.dbinstances import GROUP, STORE, VERSION, DBInstances, agent_json, store_credentials
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster
PLURAL = "dbclusters"


def create_cluster(dbi: DBInstances, name: str, **spec) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBCluster", "metadata": {"name": name},
            "spec": {"engine": "postgres", **spec}}  # fmt: skip
    return dbi.objects.create_namespaced_custom_object(GROUP, VERSION, dbi.namespace, PLURAL, body)


def cluster(dbi: DBInstances, name: str) -> dict:
    return dbi.get(name, plural=PLURAL) or {}


def wait_available(dbi: DBInstances, name: str, timeout: float = 90) -> dict:
    return wait_for(lambda: (c := cluster(dbi, name)) and (c.get("status") or {}).get("phase") == "Available" and c,
                    timeout=timeout, what=f"DBCluster {name} Available")  # fmt: skip


def release(dbi: DBInstances, name: str) -> None:
    spec = {"deletionProtection": False, "skipFinalSnapshot": True}
    dbi.objects.patch_namespaced_custom_object(GROUP, VERSION, dbi.namespace, PLURAL, name, {"spec": spec})


def set_leader(dbi: DBInstances, name: str, holder: str | None) -> None:
    """The leader lease as Patroni keeps it (labels: the server's selector without managed-by)."""
    labels = {"app.kubernetes.io/component": "database", "kuberds.io/owner-kind": "dbcluster",
              "app.kubernetes.io/instance": name}  # fmt: skip
    body = {"metadata": {"name": f"{name}-leader", "labels": labels, "annotations": {"leader": holder}}}
    try:
        dbi.core.patch_namespaced_config_map(f"{name}-leader", dbi.namespace, body)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
        dbi.core.create_namespaced_config_map(dbi.namespace, body)


def report_lag(dbi: DBInstances, pod: str, seconds: float) -> None:
    """What a replica's agent reports on its pod."""
    annotation = {"kuberds.io/agent-status": f'{{"role": "replica", "replicaLagSeconds": {seconds}}}'}
    dbi.core.patch_namespaced_pod(pod, dbi.namespace, {"metadata": {"annotations": annotation}})


def slice_pods(dbi: DBInstances, service: str) -> list[str]:
    discovery = kubernetes.client.DiscoveryV1Api(dbi.core.api_client)
    try:
        found = discovery.read_namespaced_endpoint_slice(service, dbi.namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return []
        raise
    return sorted(e.target_ref.name for e in found.endpoints or [])


def test_cluster_members_endpoints_and_status(dbi: DBInstances) -> None:
    create_cluster(dbi, "ledger", readers=2, customEndpoints=[{"name": "analytics", "staticMembers": [2]}],
                   promotionTiers=[{"member": 2, "promotionTier": 0}])  # fmt: skip
    try:
        status = wait_available(dbi, "ledger")["status"]
        ns = dbi.namespace
        sts = dbi.apps.read_namespaced_stateful_set("ledger", ns)
        assert sts.spec.replicas == 3
        assert len({m["zone"] for m in status["members"]}) == 3, status["members"]
        assert [m.get("promotionTier") for m in status["members"]] == [1, 1, 0]
        settings = agent_json(dbi, "ledger")
        assert settings["synchronous"] and settings["synchronous_strict"], "three members: strict"
        for service in ("ledger", "ledger-ro", "ledger-analytics"):
            assert dbi.core.read_namespaced_service(service, ns).spec.selector is None, service
        assert status["selector"] == ("app.kubernetes.io/instance=ledger,app.kubernetes.io/component=database,"
                                      "kuberds.io/owner-kind=dbcluster")  # fmt: skip
        assert status["customEndpoints"][0]["endpoint"] == f"ledger-analytics.{ns}.svc:5432"
        assert next(c for c in status["conditions"] if c["type"] == "EndpointsValid")["status"] == "True"

        # The writer endpoint follows the lease holder, whatever the pods' labels say.
        set_leader(dbi, "ledger", "ledger-0")
        wait_for(lambda: slice_pods(dbi, "ledger") == ["ledger-0"], timeout=10, what="writer slice → ledger-0")
        assert slice_pods(dbi, "ledger-ro") == ["ledger-0"], "no reader reports its lag yet: the writer serves"
        for pod in ("ledger-1", "ledger-2"):
            report_lag(dbi, pod, 0.0)
        wait_for(lambda: slice_pods(dbi, "ledger-ro") == ["ledger-1", "ledger-2"], timeout=10, what="readers")
        wait_for(lambda: slice_pods(dbi, "ledger-analytics") == ["ledger-2"], timeout=10, what="custom endpoint")
        report_lag(dbi, "ledger-2", 600.0)
        wait_for(lambda: slice_pods(dbi, "ledger-ro") == ["ledger-1"], timeout=10, what="a lagging reader leaves")

        started = time.monotonic()
        set_leader(dbi, "ledger", "ledger-1")
        wait_for(lambda: slice_pods(dbi, "ledger") == ["ledger-1"], timeout=10, interval=0.05,
                 what="writer slice → ledger-1")  # fmt: skip
        moved = time.monotonic() - started
        print(f"\nwriter endpoint moved {moved:.2f} s after the lease did")
        assert moved < 2.0, "the lease event moves the endpoint, not a resync"
        # The old writer reports no lag and ledger-2 is too far behind: the new writer serves reads.
        wait_for(lambda: slice_pods(dbi, "ledger-ro") == ["ledger-1"], timeout=10, what="reads on the writer")
        events = dbi.core.list_namespaced_event(ns, field_selector="involvedObject.name=ledger").items
        assert any(e.reason == "WriterMoved" and "ledger-0 → ledger-1" in e.message for e in events)

        # A hand-deleted slice comes back (at the next lease renewal or member event).
        set_leader(dbi, "ledger", None)
        wait_for(lambda: slice_pods(dbi, "ledger") == [], timeout=10, what="no lease, no writer")
    finally:
        release(dbi, "ledger")


def test_scale_subresource_sets_readers(dbi: DBInstances) -> None:
    create_cluster(dbi, "scaled", readers=1)
    try:
        wait_available(dbi, "scaled")
        dbi.objects.patch_namespaced_custom_object_scale(GROUP, VERSION, dbi.namespace, PLURAL, "scaled",
                                                         {"spec": {"replicas": 3}})  # fmt: skip
        assert cluster(dbi, "scaled")["spec"]["readers"] == 3
        wait_for(lambda: dbi.apps.read_namespaced_stateful_set("scaled", dbi.namespace).spec.replicas == 4,
                 timeout=20, what="four members")  # fmt: skip
        scale = dbi.objects.get_namespaced_custom_object_scale(GROUP, VERSION, dbi.namespace, PLURAL, "scaled")
        assert "app.kubernetes.io/instance=scaled" in scale["status"]["selector"]
    finally:
        release(dbi, "scaled")


def test_custom_endpoint_naming_a_missing_member_is_said(dbi: DBInstances) -> None:
    create_cluster(dbi, "odd", readers=1, customEndpoints=[{"name": "batch", "staticMembers": [5]}])
    try:
        condition = wait_for(lambda: next((c for c in (cluster(dbi, "odd").get("status") or {}).get("conditions", [])
                                           if c["type"] == "EndpointsValid" and c["status"] == "False"), None),
                             timeout=30, what="EndpointsValid=False")  # fmt: skip
        assert condition["reason"] == "UnknownMember"
        assert "customEndpoints batch names member(s) 5" in condition["message"]
    finally:
        release(dbi, "odd")


def test_a_clone_restores_its_source_cluster_at_its_latest_restorable_time(dbi: DBInstances) -> None:
    store_credentials(dbi)
    create_cluster(dbi, "origin", readers=0, backup={"objectStore": STORE})
    create_cluster(dbi, "copy", readers=0, cloneFrom="origin")
    try:
        # No agent runs on kwok: the source has no restorable time, and the clone waits for one.
        # (Until the source has made its backup passphrase, the clone says it waits for that.)
        condition = wait_for(lambda: next((c for c in (cluster(dbi, "copy").get("status") or {}).get("conditions", [])
                                           if c["type"] == "Reconciled" and c["reason"] == "RestoreWindowEmpty"), None),
                             timeout=30, what="the clone waiting for its source's backups")  # fmt: skip
        assert condition["status"] == "False" and condition["message"].startswith("origin has no restorable time")
        built = dbi.apps.list_namespaced_stateful_set(dbi.namespace, label_selector="app.kubernetes.io/instance=copy")
        assert built.items == [], "nothing is built before it can restore"
    finally:
        release(dbi, "origin")
        release(dbi, "copy")
