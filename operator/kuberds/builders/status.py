"""Status from observations: conditions, phase, members. Pure.

Conditions follow the Kubernetes API conventions: one entry per type, lastTransitionTime
moves only when the status changes, observedGeneration says which spec they judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kuberds.contract import PRIMARY, ROLE_LABEL
from kuberds.contract.report import AgentReport
from kuberds.quantity import to_bytes

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
STANDBY_LEADER = "standbyLeader"  # a read replica's leader, in status.members
LEADER_ROLES = frozenset({PRIMARY, STANDBY_LEADER})


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""


def merge_conditions(current: list[dict], new: list[Condition], generation: int, now: str) -> list[dict]:
    """Current conditions updated by `new`; types not mentioned are kept as they were."""
    by_type = {c["type"]: dict(c) for c in current or []}
    for condition in new:
        before = by_type.get(condition.type, {})
        changed = before.get("status") != condition.status
        by_type[condition.type] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": now
            if changed or "lastTransitionTime" not in before
            else before["lastTransitionTime"],
            "observedGeneration": generation,
        }
    return sorted(by_type.values(), key=lambda c: c["type"])


def transitions(before: list[dict], after: list[dict], problem_reasons: frozenset[str] = frozenset()) -> list[dict]:
    """Conditions whose status changed, or whose reason became one of `problem_reasons`
    (each deserves an Event)."""
    old = {c["type"]: (c.get("status"), c.get("reason")) for c in before or []}
    return [c for c in after if old.get(c["type"], (None, None))[0] != c["status"]
            or (c.get("reason") in problem_reasons and old[c["type"]][1] != c.get("reason"))]  # fmt: skip


@dataclass(frozen=True)
class Member:
    """One database pod as observed."""

    name: str
    role: str
    zone: str | None
    ready: bool
    revision: str | None = None  # controller-revision-hash: which template it runs
    deleting: bool = False
    synchronous: bool | None = None  # a standby's agent: confirms every commit (None: not said)
    # False for a primary whose agent has not yet set the master user's password (a restored
    # server still holds its source's). Counts for availability, not for rolling: a pod that
    # runs is replaced like any other, so a stuck agent can be rolled away.
    serving: bool = True
    ip: str | None = None
    node: str | None = None
    # A replica's agent: seconds behind the writer (0 while streaming with all it received
    # replayed); None: not reported.
    lag_seconds: float | None = None
    promotion_tier: int | None = None  # a DBCluster member's (None: the kind has no tiers)
    # Its agent reports its HA manager's state: then someone can say who leads, and a server
    # is available only once someone does (False: a pod with no agent, trusted as it is).
    reported: bool = False

    @property
    def ordinal(self) -> int:
        return int(self.name.rsplit("-", 1)[1])

    @property
    def in_service(self) -> bool:
        """Ready for clients: what Available, readyInstances and currentPrimary count."""
        return self.ready and self.serving

    def as_status(self) -> dict:
        out = {"name": self.name, "role": self.role, "ready": self.in_service}
        if self.zone:
            out["zone"] = self.zone
        if self.lag_seconds is not None and self.role != PRIMARY:
            out["lagSeconds"] = self.lag_seconds
        if self.promotion_tier is not None:
            out["promotionTier"] = self.promotion_tier
        if self.synchronous is not None and self.role != PRIMARY:
            out["synchronous"] = self.synchronous
        return out


def member_from_pod(pod: dict, zone_of_node: dict[str, str], role_label_values: Mapping[str, str]) -> Member:
    """`role_label_values`: the engine's (kuberds role → the value its HA manager writes)."""
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    labels = meta.get("labels") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == TRUE for c in status.get("conditions") or [])
    label = labels.get(ROLE_LABEL)
    role = next((name for name, value in role_label_values.items() if value == label), "unknown")
    node = (pod.get("spec") or {}).get("nodeName")
    report = AgentReport.from_pod(pod)
    # The HA manager's readiness says nothing of the accounts. No report, or no field (an
    # agent from before it, or none at all): trust the pod.
    serving = role != PRIMARY or report.accounts_ready is not False
    return Member(
        synchronous=report.synchronous_standby,
        name=meta["name"],
        role=role,
        zone=zone_of_node.get(node) if node else None,
        ready=ready and not meta.get("deletionTimestamp"),
        serving=serving,
        revision=labels.get("controller-revision-hash"),
        deleting=bool(meta.get("deletionTimestamp")),
        ip=status.get("podIP") or None,
        node=node,
        lag_seconds=report.replica_lag_seconds,
        reported=report.state is not None,
    )


@dataclass(frozen=True)
class Observed:
    """What a status pass saw of one server."""

    desired: int
    members: list[Member] = field(default_factory=list)
    generation_applied: bool = True  # the objects for the current generation were applied
    previous_phase: str | None = None


def availability(observed: Observed) -> list[Condition]:
    ready = [m for m in observed.members if m.in_service]
    primary = next((m.name for m in ready if m.role in LEADER_ROLES), None)
    # A pod can be Ready with no one leading (a restore still replaying its archive, a
    # failover under way): the endpoint then serves no one. Agents say who leads; pods
    # without one are trusted as they are.
    leaderless = primary is None and any(m.reported for m in observed.members)
    available = bool(ready) and not leaderless
    all_ready = len(ready) >= observed.desired and not leaderless
    counted = f"{len(ready)}/{observed.desired} database pods ready"
    return [
        Condition(
            "Available",
            TRUE if available else FALSE,
            "MembersReady" if available else "NoLeader" if ready else "NoMemberReady",
            counted + (f"; primary {primary}" if primary else "; no member leads yet" if leaderless else ""),
        ),
        Condition(
            "Ready",
            TRUE if all_ready and observed.generation_applied else FALSE,
            "AllMembersReady" if all_ready else "NoLeader" if leaderless else "MembersNotReady",
            counted,
        ),
    ]


def phase(observed: Observed, conditions: list[dict], paused: bool, deleting: bool) -> str:
    state = {c["type"]: c["status"] for c in conditions}
    if deleting:
        return "Deleting"
    if paused:
        return "Paused"
    if state.get("Reconciled") == FALSE:
        return "Failed"
    if state.get("StorageFull") == TRUE:
        return "StorageFull"  # RDS's storage-full: up, perhaps, but its writes fail
    if state.get("Ready") == TRUE:
        return "Available"
    if observed.previous_phase in (None, "Creating"):
        return "Creating"
    if not observed.generation_applied or any(m.deleting for m in observed.members):
        return "Modifying"
    return "Degraded"


def storage_condition(wanted: str, claims: list[dict]) -> tuple[Condition | None, str | None]:
    """StorageResized from the claims as they are now, and the smallest allocated size (what
    the server can really use). None while a claim has not been asked for the size yet: the
    full pass asks, or says why it cannot (ExpansionNotSupported, ResizeRefused), and a
    refresh from an older view must not overwrite that."""
    capacities = [(c.get("status") or {}).get("capacity", {}).get("storage") for c in claims]
    known = [c for c in capacities if c]
    allocated = min(known, key=to_bytes) if known else None
    requests = [c["spec"]["resources"]["requests"]["storage"] for c in claims]
    if not claims or any(to_bytes(r) < to_bytes(wanted) for r in requests):
        return None, allocated
    if len(known) == len(claims) and all(to_bytes(c) >= to_bytes(wanted) for c in known):
        return Condition("StorageResized", TRUE, "Resized", f"every volume has {wanted}"), allocated
    return (
        Condition("StorageResized", FALSE, "Resizing",
                  f"asked for {wanted} on {len(claims)} volume(s); waiting for the storage driver"),
        allocated,
    )  # fmt: skip
