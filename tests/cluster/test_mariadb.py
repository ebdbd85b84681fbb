"""MariaDB DBInstances on the real control plane (pods on kwok): what a server is made of, the
writer endpoint following the agents' Lease, and what is refused (with the field named)."""

from __future__ import annotations

from datetime import UTC, datetime

import kubernetes
import pytest

from tests.support.dbinstances import DBInstances, agent_json, store_credentials
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster


def test_a_multi_az_mariadb_server_is_two_members_with_sized_parameters(dbi: DBInstances, api) -> None:
    dbi.create("shop", engine="mariadb", multiAZ=True, instanceClass="db.r6.large", masterUsername="owner",
               parameters={"max_connections": "300", "sql_mode": "STRICT_TRANS_TABLES"})  # fmt: skip
    status = dbi.wait_phase("shop", "Available")["status"]
    ns = dbi.namespace
    assert status["endpoint"] == f"shop.{ns}.svc:3306" and status["engineVersion"] == "10.11"
    assert len({m["zone"] for m in status["members"]}) == 2, status["members"]
    sts = dbi.apps.read_namespaced_stateful_set("shop", ns)
    container = sts.spec.template.spec.containers[0]
    assert sts.spec.replicas == 2 and container.image.split("/")[-1].startswith("mariadb:")
    assert container.args == ["agent", "mariadb"] and container.readiness_probe.http_get.path == "/ready"
    assert sts.spec.template.spec.security_context.run_as_non_root is True
    settings = agent_json(dbi, "shop")
    # RDS's sizing of a 16 GiB class (3/4 to the buffer pool, in 128 MiB chunks), the user's on top.
    assert settings["parameters"]["innodb_buffer_pool_size"] == str(12 * 1024**3)
    assert settings["parameters"]["max_connections"] == "300" and settings["synchronous"] is True
    rules = kubernetes.client.RbacAuthorizationV1Api(api).read_namespaced_role("shop-agent", ns).rules
    leases = [r for r in rules if r.resources == ["leases"] and r.resource_names]
    assert leases and leases[0].resource_names == ["shop-leader"], "the agents keep their own Lease only"
    pods = [r for r in rules if r.resources == ["pods"]]
    assert pods and sorted(pods[0].resource_names) == ["shop-0", "shop-1"]


def test_the_writer_endpoint_follows_the_holder_of_the_agents_lease(dbi: DBInstances, api) -> None:
    dbi.create("ledger", engine="mariadb", multiAZ=True)
    dbi.wait_phase("ledger", "Available")
    ns, coordination = dbi.namespace, kubernetes.client.CoordinationV1Api(api)
    labels = {k: v for k, v in dbi.apps.read_namespaced_stateful_set("ledger", ns).spec.selector.match_labels.items()}
    now = datetime.now(UTC)
    lease = {
        "metadata": {"name": "ledger-leader", "labels": labels},
        "spec": {"holderIdentity": "ledger-1", "leaseDurationSeconds": 5, "acquireTime": now, "renewTime": now},
    }
    coordination.create_namespaced_lease(ns, lease)  # what the agent that took it writes
    discovery = kubernetes.client.DiscoveryV1Api(api)
    pod_ip = dbi.core.read_namespaced_pod("ledger-1", ns).status.pod_ip

    def writer_addresses() -> list[str]:
        slices = discovery.list_namespaced_endpoint_slice(ns, label_selector="kubernetes.io/service-name=ledger")
        return [a for s in slices.items for e in (s.endpoints or []) for a in e.addresses]

    wait_for(lambda: writer_addresses() == [pod_ip], timeout=30, what="the writer endpoint on ledger-1")
    coordination.patch_namespaced_lease("ledger-leader", ns, {"spec": {"holderIdentity": "ledger-0"}})
    other = dbi.core.read_namespaced_pod("ledger-0", ns).status.pod_ip
    wait_for(lambda: writer_addresses() == [other], timeout=30, what="the writer endpoint moved to ledger-0")


def test_what_mariadb_does_not_offer_yet_is_named(dbi: DBInstances) -> None:
    store_credentials(dbi)
    dbi.create("mysql", engine="mysql")
    refused = dbi.wait_condition("mysql", "Reconciled", "False", "EngineNotSupported")
    assert "no Oracle MySQL server" in refused["message"] and "engine: mariadb" in refused["message"]
    body = {"apiVersion": "kuberds.io/v1alpha1", "kind": "DBCluster", "metadata": {"name": "fleet"},
            "spec": {"engine": "mariadb"}}  # fmt: skip
    dbi.objects.create_namespaced_custom_object("kuberds.io", "v1alpha1", dbi.namespace, "dbclusters", body)

    def reconciled() -> dict | None:
        conditions = ((dbi.get("fleet", plural="dbclusters") or {}).get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Reconciled" and c["status"] == "False"), None)

    refused = wait_for(reconciled, timeout=60, what="the MariaDB DBCluster refused")
    assert refused["reason"] == "EngineNotSupported" and "not yet as a DBCluster" in refused["message"]


def test_deleting_takes_a_final_snapshot_of_a_mariadb_server(dbi: DBInstances) -> None:
    """The agent takes it (no agent here): the deletion waits for it, as for PostgreSQL."""
    dbi.create("keep", engine="mariadb")
    dbi.wait_phase("keep", "Available")
    dbi.delete("keep")
    status = wait_for(lambda: ((dbi.get("keep") or {}).get("status") or {}).get("finalSnapshot") and
                      dbi.get("keep")["status"], what="a final snapshot named in status")  # fmt: skip
    snapshot = dbi.get(status["finalSnapshot"], plural="dbsnapshots")
    assert snapshot["spec"]["source"] == {"dbInstance": "keep"} and dbi.get("keep") is not None
    dbi.patch("keep", {"skipFinalSnapshot": True})
    wait_for(lambda: dbi.get("keep") is None, timeout=60, what="the DBInstance gone once skipFinalSnapshot is set")
