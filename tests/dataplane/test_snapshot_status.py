"""A DBSnapshot's status has two writers: the source's agent (its phase, said by Ready too) and
the operator (RemovalApproved, the phases it owns). A merge patch replaces the whole condition
list, so each write is conditional on the version it read. Here against the real API server,
with no operator running (as in every data-plane test): the test plays the operator's part."""

from __future__ import annotations

from collections.abc import Callable

import kubernetes
import pytest
from tests.support.dbinstances import GROUP, VERSION

from kuberds.agent.kube import RESOURCES, AgentKube, KubeConflict
from kuberds.agent.snapshots import Snapshots
from kuberds.restclient import RestClient

NAME = "nightly"


class OperatorWritesBetween(AgentKube):
    """Lets `write` land once between the agent's read of the snapshot and its write."""

    def __init__(self, api: kubernetes.client.ApiClient, write: Callable[[], None]):
        super().__init__(RestClient(api, RESOURCES))
        self.write: Callable[[], None] | None = write
        self.conflicts = 0

    def merge_patch(self, *args, **kwargs) -> dict | None:
        if self.write:
            write, self.write = self.write, None
            write()
        try:
            return super().merge_patch(*args, **kwargs)
        except KubeConflict:
            self.conflicts += 1
            raise


@pytest.fixture
def objects(api: kubernetes.client.ApiClient, namespace: str) -> kubernetes.client.CustomObjectsApi:
    objects = kubernetes.client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "dbsnapshots", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DBSnapshot", "metadata": {"name": NAME},
        "spec": {"source": {"dbInstance": "db"}}})  # fmt: skip
    return objects


def test_the_agents_ready_keeps_a_condition_the_operator_wrote_after_the_agent_read(
    api: kubernetes.client.ApiClient, namespace: str, objects: kubernetes.client.CustomObjectsApi
) -> None:
    def operator_approves_removal() -> None:
        approved = {"type": "RemovalApproved", "status": "True", "reason": "NoRestoreReadsIt",
                    "message": "no restore reads it", "lastTransitionTime": "2026-12-05T00:00:00Z"}  # fmt: skip
        objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "dbsnapshots", NAME,
                                                      {"status": {"conditions": [approved]}})  # fmt: skip

    kube = OperatorWritesBetween(api, operator_approves_removal)
    Snapshots(kube, namespace, "db").set_status(NAME, {"phase": "Available", "backupID": "20261205-000000F"})

    status = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "dbsnapshots", NAME)["status"]
    said = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert said == {"RemovalApproved": ("True", "NoRestoreReadsIt"), "Ready": ("True", "Available")}, said
    assert (status["phase"], status["backupID"]) == ("Available", "20261205-000000F")
    assert kube.conflicts == 1, "the agent's first write was based on the version before the operator's"


def test_a_snapshot_deleted_before_the_agent_writes_is_left_alone(
    api: kubernetes.client.ApiClient, namespace: str, objects: kubernetes.client.CustomObjectsApi
) -> None:
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "dbsnapshots", NAME)
    kube = OperatorWritesBetween(api, lambda: None)
    Snapshots(kube, namespace, "db").set_status(NAME, {"phase": "Failed"})
    assert kube.write is not None, "nothing was written: the snapshot is gone"
