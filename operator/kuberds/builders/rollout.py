"""Rolling a server's pods to a new template: which pod next, and what must happen before it
goes (a switchover when it is the primary). Pure decisions over observed members."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.api.requests import ANY_MEMBER
from kuberds.builders.status import Member
from kuberds.contract import PRIMARY, REPLICA


def next_pod_to_roll(members: list[Member], update_revision: str | None, desired: int) -> Member | None:
    """OnDelete rolling: replace one outdated pod at a time, replicas before the primary, and
    only while every desired pod exists and is ready (never take a second member down; a pod
    just replaced may be missing from what was observed for a moment)."""
    if not update_revision or len(members) < desired or any(not m.ready for m in members):
        return None
    outdated = [m for m in members if m.revision and m.revision != update_revision]
    outdated.sort(key=lambda m: (m.role == PRIMARY, m.name))
    return outdated[0] if outdated else None


@dataclass(frozen=True)
class Handover:
    """What must happen before a pod is replaced: "replace" it now, "switchover" to `standby`
    first, or "wait" (`reason` says for what)."""

    action: str
    standby: Member | None = None
    reason: str = ""


HA_ROLES = (PRIMARY, REPLICA)


def handover(members: list[Member], target: Member, synchronous: bool) -> Handover:
    """A standby, or a primary with no other member (a Single-AZ outage, as on RDS), is
    replaced at once. A primary with a standby first hands over to it — and waits while the
    standby has not yet reported itself a replica (a restarted pod is Ready before Patroni
    labels it, and replacing the primary then would be a failover, not a switchover), or,
    with synchronous replication, has not yet reported itself the synchronous standby.
    Pods without any HA role (no HA manager runs, as on kwok) are simply replaced."""
    others = [m for m in members if m.name != target.name]
    if target.role not in HA_ROLES and any(m.role in HA_ROLES for m in others):
        return Handover("wait", reason=f"waiting for {target.name} to report its role before replacing it")
    if target.role != PRIMARY or not others:
        return Handover("replace")
    ready = [m for m in others if m.role == REPLICA and m.ready and not m.deleting]
    if not ready:
        names = ", ".join(f"{m.name} ({m.role})" for m in others)
        return Handover("wait", reason=f"waiting for a ready replica to take over from primary {target.name}: {names}")
    # With synchronous replication only the synchronous standby may take over (it has every
    # commit); a restarted standby becomes it a few seconds after it streams again.
    standby = next((m for m in ready if m.synchronous or not synchronous), None)
    if standby is None:
        names = ", ".join(m.name for m in ready)
        return Handover("wait", reason=f"waiting for {names} to become the synchronous standby")
    return Handover("switchover", standby)


def requested_handover(members: list[Member], requested: str, synchronous: bool) -> Handover:
    """A person's switchover request (kuberds.api.requests): "switchover" to the member asked
    for (or, for ANY_MEMBER, to the one a rollout would pick), "done" when it leads already,
    "refuse" when it cannot take over now (`reason` says why). Never "wait": a request that
    waited for a member to become ready would fire long after it was made."""
    primary = next((m for m in members if m.role == PRIMARY), None)
    if primary is None:
        return Handover("refuse", reason="no member is the primary now: nothing to switch over from")
    if requested == primary.name:
        return Handover("done", reason=f"{primary.name} is the primary already")
    if requested != ANY_MEMBER and requested not in {m.name for m in members}:
        names = ", ".join(sorted(m.name for m in members))
        return Handover("refuse", reason=f"no member is named {requested!r}; the members are {names}")
    step = handover([m for m in members if requested in (ANY_MEMBER, m.name) or m.name == primary.name], primary,
                    synchronous)  # fmt: skip
    if step.action == "switchover":
        return step
    if step.action == "replace":  # the primary is the only member
        return Handover("refuse", reason=f"{primary.name} has no standby to hand over to")
    return Handover("refuse", reason=step.reason.replace("waiting for", "needs", 1))
