"""Storage autoscaling against a real API server: the agents' reports go in through the
contract (the annotation an agent writes on its pod; kwok's pods run no agent, so the test
writes it), and what comes out is claims, the StatefulSet's template, status and Events.
The operator runs with seconds for RDS's minutes and hours (tests/cluster/conftest.py)."""

from __future__ import annotations

import json
import re

from kubernetes.client.rest import ApiException

from kuberds.contract import AGENT_STATUS_ANNOTATION
from tests.support.dbinstances import DBInstances
from tests.support.kube import wait_for

GIB = 2**30


def report(dbi: DBInstances, pod: str, size: int, free: int) -> None:
    """What the member's agent would publish: its volume's size and free bytes."""
    body = {"volumeBytes": size, "volumeFreeBytes": free, "role": "replica"}
    patch = {"metadata": {"annotations": {AGENT_STATUS_ANNOTATION: json.dumps(body)}}}
    dbi.core.patch_namespaced_pod(pod, dbi.namespace, patch)


def members(dbi: DBInstances, name: str) -> dict[str, str]:
    """The database pods' uids, by name."""
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=database"
    return {
        p.metadata.name: p.metadata.uid
        for p in dbi.core.list_namespaced_pod(dbi.namespace, label_selector=selector).items
    }


def requests(dbi: DBInstances, name: str) -> list[str]:
    return sorted(dbi.core.read_namespaced_persistent_volume_claim(f"data-{name}-{i}", dbi.namespace)
                  .spec.resources.requests["storage"] for i in range(2))  # fmt: skip


def reasons(dbi: DBInstances, reason: str) -> list[str]:
    return [e.message for e in dbi.core.list_namespaced_event(dbi.namespace, field_selector=f"reason={reason}").items]


def test_autoscaling_grows_every_volume_after_a_sustained_low_waits_out_the_cooldown_and_stops_at_max(
    dbi: DBInstances,
) -> None:
    storage = {"size": "10Gi", "storageClassName": "standard", "autoscaling": {"maxSize": "12Gi"}}
    dbi.create("auto", multiAZ=True, storage=storage)
    dbi.wait_phase("auto", "Available")
    pods = members(dbi, "auto")
    assert sorted(pods) == ["auto-0", "auto-1"]
    for pod in pods:
        report(dbi, pod, 10 * GIB, 5 * GIB)
    dbi.wait_condition("auto", "StorageAutoscaling", "True", "EnoughFreeSpace", timeout=30)
    storage = dbi.get("auto")["status"]["storage"]
    assert (storage["used"], storage["freePercent"], storage["maxSize"]) == ("5Gi", 50, "12Gi")

    # The fullest member decides: one low volume grows both. 5 % free, not yet for 4 s.
    report(dbi, "auto-1", 10 * GIB, GIB // 2)
    wait_for(lambda: requests(dbi, "auto") == ["11Gi", "11Gi"], timeout=30, what="both claims asked for 11Gi")
    # Only after the low lasted (4 s here), as its Event says.
    grown = wait_for(lambda: [m for m in reasons(dbi, "StorageAutoscaled") if "from 10Gi to 11Gi" in m], timeout=30,
                     what="the StorageAutoscaled Event")  # fmt: skip
    assert len(grown) == 1 and int(re.search(r"free for (\d+)s", grown[0]).group(1)) >= 4, grown
    status = wait_for(lambda: (s := dbi.get("auto")["status"]["storage"]).get("autoscaledSize") == "11Gi" and s,
                      timeout=30, what="status.storage.autoscaledSize 11Gi")  # fmt: skip
    assert status["lastGrowTime"] and status["requested"] == "11Gi", status
    assert dbi.get("auto")["spec"]["storage"]["size"] == "10Gi", "the spec stays its author's"
    wait_for(lambda: claim_template(dbi, "auto") == "11Gi", timeout=30, what="the StatefulSet re-made at 11Gi")
    assert members(dbi, "auto") == pods, "re-making the StatefulSet replaced no pod"

    # Still low on the grown volume: it waits out the cooldown (20 s here, 6 h by default).
    for pod in pods:
        report(dbi, pod, 11 * GIB, GIB // 2)
    cooling = dbi.wait_condition("auto", "StorageAutoscaling", "False", "Cooldown", timeout=30)
    assert "may grow again from" in cooling["message"]
    assert requests(dbi, "auto") == ["11Gi", "11Gi"]
    wait_for(lambda: requests(dbi, "auto") == ["12Gi", "12Gi"], timeout=60, what="a second growth, to maxSize")

    # At maxSize and still low: it says so, and StorageLow warns.
    for pod in pods:
        report(dbi, pod, 12 * GIB, GIB // 2)
    at_max = dbi.wait_condition("auto", "StorageAutoscaling", "False", "AtMaxSize", timeout=60)
    assert "maxSize 12Gi" in at_max["message"]
    storage = dbi.get("auto")["status"]["storage"]
    assert (storage["autoscaledSize"], storage["requested"], storage["allocated"]) == ("12Gi", "12Gi", "12Gi")
    dbi.wait_condition("auto", "StorageLow", "True", "LowFreeSpace", timeout=30)
    assert any("StorageLow is True" in m for m in reasons(dbi, "LowFreeSpace"))


def test_autoscaling_on_a_class_that_cannot_expand_says_so(dbi: DBInstances) -> None:
    dbi.create("rigid", storage={"size": "10Gi", "storageClassName": "fixed", "autoscaling": {"maxSize": "20Gi"}})
    dbi.wait_phase("rigid", "Available")
    report(dbi, "rigid-0", 10 * GIB, GIB // 4)
    condition = dbi.wait_condition("rigid", "StorageAutoscaling", "False", "ExpansionNotSupported", timeout=30)
    assert "fixed" in condition["message"]
    claim = dbi.core.read_namespaced_persistent_volume_claim("data-rigid-0", dbi.namespace)
    assert claim.spec.resources.requests["storage"] == "10Gi"
    # Taken out of the spec, autoscaling says it is off rather than keep its last verdict.
    dbi.patch("rigid", {"storage": {"autoscaling": None}})
    dbi.wait_condition("rigid", "StorageAutoscaling", "False", "Disabled", timeout=30)


def test_a_full_volume_without_autoscaling_is_storage_full(dbi: DBInstances) -> None:
    dbi.create("brim", storage={"size": "10Gi"})
    dbi.wait_phase("brim", "Available")
    report(dbi, "brim-0", 10 * GIB, 10 * 2**20)
    full = dbi.wait_condition("brim", "StorageFull", "True", "VolumeFull", timeout=30)
    assert (
        full["message"]
        == "brim-0's volume has 10Mi free of 10.00Gi: writes fail; raise storage.size (the volumes grow online)"
    )
    dbi.wait_phase("brim", "StorageFull", timeout=30)
    report(dbi, "brim-0", 20 * GIB, 10 * GIB)
    dbi.wait_condition("brim", "StorageFull", "False", "EnoughFreeSpace", timeout=30)
    dbi.wait_phase("brim", "Available", timeout=30)


def claim_template(dbi: DBInstances, name: str) -> str | None:
    """The StatefulSet's claim size; None for the moment it is being made again."""
    try:
        sts = dbi.apps.read_namespaced_stateful_set(name, dbi.namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return sts.spec.volume_claim_templates[0].spec.resources.requests["storage"]
