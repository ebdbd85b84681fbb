"""Status decisions from observations: conditions, phase, rolling order, storage."""

from __future__ import annotations

import json

from kuberds.builders import status
from kuberds.builders.rollout import handover, next_pod_to_roll, requested_handover
from kuberds.builders.status import (
    Condition,
    Member,
    Observed,
    availability,
    merge_conditions,
    phase,
    storage_condition,
    transitions,
)
from kuberds.engines.postgres import POSTGRES
from kuberds.operations.status import event_type
from kuberds.quantity import parse_quantity, to_bytes


def member_from_pod(pod: dict, zones: dict[str, str]) -> Member:
    """A PostgreSQL member: Patroni's role label values."""
    return status.member_from_pod(pod, zones, POSTGRES.role_label_values)


def test_transition_time_moves_only_when_status_changes() -> None:
    first = merge_conditions([], [Condition("Ready", "False", "Starting", "0/1")], 1, "T1")
    again = merge_conditions(first, [Condition("Ready", "False", "Starting", "still 0/1")], 2, "T2")
    assert again[0]["lastTransitionTime"] == "T1" and again[0]["observedGeneration"] == 2
    flipped = merge_conditions(again, [Condition("Ready", "True", "AllMembersReady")], 2, "T3")
    assert flipped[0]["lastTransitionTime"] == "T3"
    assert [c["type"] for c in transitions(again, flipped)] == ["Ready"]
    kept = merge_conditions(flipped, [Condition("Paused", "False", "AutomationActive")], 3, "T4")
    assert [c["type"] for c in kept] == ["Paused", "Ready"], "unmentioned conditions are kept"


def test_warnings_are_for_problems_and_lost_readiness_only() -> None:
    assert event_type("Ready", "False", None) is None  # a new instance is not ready yet: no news
    assert event_type("Ready", "False", "True") == "Warning"  # it was, and is no more
    assert event_type("Reconciled", "False", None) == "Warning"  # a missing Secret, say
    assert event_type("Ready", "True", "False") == "Normal"
    assert event_type("Reconciled", "True", None) == "Normal"


def pod(name: str, ready: bool, role: str | None = None, revision: str = "r1", node: str = "n1") -> dict:
    labels = {"controller-revision-hash": revision, **({"kuberds.io/role": role} if role else {})}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_members_and_phases() -> None:
    members = [member_from_pod(pod("db-0", True, "master"), {"n1": "zone-a"}),
               member_from_pod(pod("db-1", False), {"n1": "zone-a"})]  # fmt: skip
    assert members[0].as_status() == {"name": "db-0", "role": "primary", "ready": True, "zone": "zone-a"}
    observed = Observed(desired=2, members=members, previous_phase=None)
    conditions = merge_conditions([], availability(observed), 1, "T")
    states = {c["type"]: c["status"] for c in conditions}
    assert states == {"Available": "True", "Ready": "False"}
    assert phase(observed, conditions, paused=False, deleting=False) == "Creating"
    was_up = Observed(desired=2, members=members, previous_phase="Available")
    assert phase(was_up, conditions, paused=False, deleting=False) == "Degraded"
    assert phase(was_up, conditions, paused=True, deleting=False) == "Paused"
    assert phase(was_up, conditions, paused=False, deleting=True) == "Deleting"


def test_rolling_replaces_replicas_first_and_one_at_a_time() -> None:
    primary = Member("db-0", "primary", "zone-a", True, revision="old")
    replica = Member("db-1", "replica", "zone-b", True, revision="old")
    assert next_pod_to_roll([primary, replica], "new", 2) == replica
    assert next_pod_to_roll([primary, Member("db-1", "replica", "zone-b", True, "new")], "new", 2) == primary
    waiting = Member("db-1", "replica", "zone-b", False, revision="new")
    assert next_pod_to_roll([primary, waiting], "new", 2) is None, "never take a second member down"
    assert next_pod_to_roll([Member("db-0", "primary", "zone-a", True, "new")], "new", 2) is None
    # The standby's replacement not observed yet: the outdated primary alone must wait.
    assert next_pod_to_roll([primary], "new", 2) is None
    assert next_pod_to_roll([primary], "new", 1) == primary  # Single-AZ


def test_storage_condition_follows_the_claims() -> None:
    def claim(requested: str, capacity: str) -> dict:
        spec = {"resources": {"requests": {"storage": requested}}}
        return {"spec": spec, "status": {"capacity": {"storage": capacity}}}

    # Not every claim asked for the size yet: the full pass decides (it asks, or says why not),
    # and a refresh from this view must not overwrite what it said.
    condition, allocated = storage_condition("50Gi", [claim("20Gi", "20Gi"), claim("50Gi", "50Gi")])
    assert (condition, allocated) == (None, "20Gi")
    condition, allocated = storage_condition("50Gi", [claim("50Gi", "20Gi"), claim("50Gi", "50Gi")])
    assert (condition.status, condition.reason, allocated) == ("False", "Resizing", "20Gi")
    condition, allocated = storage_condition("50Gi", [claim("50Gi", "50Gi"), claim("50Gi", "50Gi")])
    assert (condition.status, allocated) == ("True", "50Gi")


def test_quantities() -> None:
    assert to_bytes("20Gi") == 20 * 2**30 and to_bytes("1.5Gi") == 3 * 2**29 and to_bytes("1G") == 10**9
    assert parse_quantity("250m") * 4 == 1


def test_primary_is_replaced_only_after_a_switchover_to_a_ready_standby() -> None:
    primary = Member("db-0", "primary", "zone-a", True, "old")
    standby = Member("db-1", "replica", "zone-b", True, "new")  # no agent report (yet)
    assert handover([primary, standby], primary, synchronous=False).action == "switchover"
    assert handover([primary, standby], primary, synchronous=False).standby == standby
    assert handover([primary, standby], standby, synchronous=True).action == "replace"  # a standby: just replaced
    assert handover([primary], primary, synchronous=False).action == "replace"  # Single-AZ: an outage, as on RDS
    # A restarted standby is Ready before Patroni labels it: wait, or it would be a failover.
    unlabelled = Member("db-1", "unknown", "zone-b", True, "new")
    waiting = handover([primary, unlabelled], primary, synchronous=True)
    assert waiting.action == "wait" and "db-1 (unknown)" in waiting.reason
    # Nor is a primary Patroni has not labelled yet replaced as if it were a standby.
    unlabelled_primary = Member("db-0", "unknown", "zone-a", True, "old")
    assert handover([unlabelled_primary, standby], unlabelled_primary, synchronous=True).action == "wait"
    # Synchronous replication: only a standby that reported itself synchronous may take over.
    for not_yet in (standby, Member("db-1", "replica", "zone-b", True, "new", synchronous=False)):
        waiting = handover([primary, not_yet], primary, synchronous=True)
        assert waiting.action == "wait" and "synchronous standby" in waiting.reason
    in_sync = Member("db-1", "replica", "zone-b", True, "new", synchronous=True)
    assert handover([primary, in_sync], primary, synchronous=True).standby == in_sync
    # kwok pods have no Patroni, hence no roles: every pod is simply replaced.
    kwok = [Member("db-0", "unknown", None, True), unlabelled]
    assert handover(kwok, unlabelled, synchronous=True).action == "replace"


def test_a_requested_switchover_goes_only_where_a_rollout_could() -> None:
    primary = Member("db-0", "primary", "zone-a", True)
    in_sync = Member("db-1", "replica", "zone-b", True, synchronous=True)
    other = Member("db-2", "replica", "zone-c", True, synchronous=False)
    members = [primary, in_sync, other]
    assert requested_handover(members, "any", synchronous=True).standby == in_sync
    assert requested_handover(members, "db-1", synchronous=True).standby == in_sync
    assert requested_handover(members, "db-2", synchronous=False).standby == other
    # Never to a standby that may lack acknowledged commits, never a wait: refused, saying why.
    refused = requested_handover(members, "db-2", synchronous=True)
    assert refused.action == "refuse" and refused.reason == "needs db-2 to become the synchronous standby"
    assert requested_handover(members, "db-0", synchronous=True).action == "done"
    unknown = requested_handover(members, "db-9", synchronous=True)
    assert unknown.action == "refuse" and "db-0, db-1, db-2" in unknown.reason
    assert "no standby" in requested_handover([primary], "any", synchronous=False).reason
    down = requested_handover([primary, Member("db-1", "replica", "zone-b", False)], "db-1", synchronous=False)
    assert down.action == "refuse" and "a ready replica" in down.reason
    assert requested_handover([in_sync, other], "any", synchronous=True).action == "refuse"  # no primary


def test_the_switchover_request_is_not_under_kopfs_own_prefix() -> None:
    # Kopf ignores changes to annotations under the prefix it keeps its state in: a request
    # there would never reach a handler (seen in e2e).
    from kuberds.api.requests import SWITCHOVER_ANNOTATION
    from kuberds.triggers import KOPF_STATE_PREFIX

    assert not SWITCHOVER_ANNOTATION.startswith(f"{KOPF_STATE_PREFIX}/")


def test_the_switchover_request_names_leader_and_candidate() -> None:
    request = POSTGRES.switchover("db-0", "db-1")
    assert (request.method, request.path, request.body) == (
        "POST",
        "/switchover",
        {"leader": "db-0", "candidate": "db-1"},
    )


def test_a_member_reads_its_agents_synchronous_report() -> None:
    report = {"kuberds.io/agent-status": json.dumps({"role": "replica", "synchronousStandby": True})}
    pod = {"metadata": {"name": "db-1", "labels": {"kuberds.io/role": "replica"}, "annotations": report}}
    assert member_from_pod(pod, {}).synchronous is True
    # Status says it: a Multi-AZ server whose standby is not synchronous cannot fail over yet.
    assert member_from_pod(pod, {}).as_status()["synchronous"] is True
    pod["metadata"]["annotations"] = {"kuberds.io/agent-status": "not json"}
    assert member_from_pod(pod, {}).synchronous is None
    assert "synchronous" not in member_from_pod(pod, {}).as_status(), "not said: not shown"


def test_a_primary_is_in_service_only_once_its_agent_has_set_the_accounts() -> None:
    def primary(report: dict | None) -> Member:
        annotations = {"kuberds.io/agent-status": json.dumps(report)} if report is not None else {}
        pod_ = {**pod("db-0", True, "master"), "metadata": {
            "name": "db-0", "labels": {"kuberds.io/role": "master"}, "annotations": annotations}}  # fmt: skip
        return member_from_pod(pod_, {})

    # A restored primary still holds the source's password until its agent sets the new one.
    waiting = primary({"role": "master", "accountsReady": False})
    assert (waiting.in_service, waiting.as_status()["ready"]) == (False, False)
    assert waiting.ready, "the pod runs: a rolling update may still replace it"
    assert availability(Observed(desired=1, members=[waiting]))[0].status == "False"
    assert primary({"role": "master", "accountsReady": True}).in_service
    # Promoted a moment ago: its report is still the standby's, which holds the replicated accounts.
    assert primary({"role": "replica", "accountsReady": None}).in_service
    assert primary({"role": "master"}).in_service  # an agent without the field
    assert primary(None).in_service  # no agent (the control-plane tier)
    replica = pod("db-1", True, "replica")
    replica["metadata"]["annotations"] = {"kuberds.io/agent-status": json.dumps({"accountsReady": False})}
    assert member_from_pod(replica, {}).in_service  # accounts are the primary's business


def test_a_server_no_member_leads_is_not_available() -> None:
    """A clone still replaying its archive runs, Ready, as a replica; the writer endpoint then
    serves no one (a CI run saw a clone Available with no writer and its connections refused)."""

    def reporting(name: str, role: str | None) -> dict:
        out = pod(name, True, role)
        out["metadata"]["annotations"] = {"kuberds.io/agent-status": json.dumps({"state": "running"})}
        return out

    replaying = Observed(desired=1, members=[member_from_pod(reporting("db-0", "replica"), {})])
    available, ready = availability(replaying)
    assert (available.status, available.reason, ready.status) == ("False", "NoLeader", "False")
    assert "no member leads" in available.message
    led = Observed(desired=2, members=[member_from_pod(reporting("db-0", "master"), {}),
                                       member_from_pod(reporting("db-1", "replica"), {})])  # fmt: skip
    assert [c.status for c in availability(led)] == ["True", "True"]
    # Pods no agent reports on (the control-plane tier's) are trusted as they are.
    silent = Observed(desired=1, members=[member_from_pod(pod("db-0", True), {})])
    assert [c.status for c in availability(silent)] == ["True", "True"]
