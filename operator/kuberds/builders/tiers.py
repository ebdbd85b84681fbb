"""Promotion tiers (Aurora's): after a failover the writer should be the healthy member with
the lowest tier. Pure: what the operator observed in, one readable step out.

Patroni 3.0 has no failover priority: it promotes the synchronous standby (or, without
synchronous mode, the healthiest replica), whatever its tier. So the operator makes tiers
true afterwards: right after a failover, when a healthy member has a better tier than the new
writer, it asks for a switchover to it. In synchronous mode Patroni accepts only a
synchronous standby as the target, and it keeps the synchronous standby it has while that
streams: when it is a member of a worse tier, the step restarts it, the writer picks another
meanwhile (a best-tier member, if it streams), and the switchover follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kuberds.builders.status import Member


@dataclass(frozen=True)
class TierStep:
    # restart: the target is the synchronous standby of a worse tier, restarted so that the
    # writer picks a best-tier member instead (Patroni keeps its synchronous standby while it
    # streams, so the best tier would otherwise never be one).
    action: Literal["none", "wait", "switchover", "restart"]
    reason: str
    target: Member | None = None


def failed_over(leader: str | None, last_holder: str | None, asked: bool) -> bool:
    """Whether the lease moved by a failover: a new member holds it, after another (the lease
    may have passed through nobody: a stopping writer releases it first), and the operator did
    not ask for the move."""
    return bool(leader) and last_holder not in (None, leader) and not asked


def _healthy(member: Member, leader: str) -> bool:
    return member.name != leader and member.in_service and not member.deleting and member.lag_seconds is not None


def _tier(member: Member, tiers: tuple[int, ...]) -> int:
    return tiers[member.ordinal] if member.ordinal < len(tiers) else max(tiers, default=0)


def best_target(candidates: list[Member], tiers: tuple[int, ...], synchronous: bool) -> tuple[Member | None, str]:
    """The member a switchover should go to among healthy `candidates`: the lowest tier,
    then the least lag; in synchronous mode only a synchronous standby (what Patroni accepts).
    None, and why, when there is none."""
    if not candidates:
        return None, "no healthy member to move the writer to"
    best = min(_tier(m, tiers) for m in candidates)
    chosen = sorted((m for m in candidates if _tier(m, tiers) == best), key=lambda m: (m.lag_seconds, m.ordinal))
    if synchronous and not any(m.synchronous for m in chosen):
        return None, f"tier-{best} {', '.join(m.name for m in chosen)} not a synchronous standby yet"
    target = next(m for m in chosen if m.synchronous or not synchronous)
    return target, f"{target.name} has tier {best}"


def after_failover(members: list[Member], leader: str | None, tiers: tuple[int, ...], synchronous: bool) -> TierStep:
    """The step that puts the writer on the best tier, with `tiers` by member ordinal."""
    writer = next((m for m in members if m.name == leader), None)
    if writer is None:
        return TierStep("wait", "no member holds the leader lease")
    healthy = [m for m in members if _healthy(m, writer.name)]
    better = [m for m in healthy if _tier(m, tiers) < _tier(writer, tiers)]
    if not better:
        return TierStep("none", f"writer {writer.name} has tier {_tier(writer, tiers)}, the best of the healthy "
                                "members")  # fmt: skip
    target, why = best_target(better, tiers, synchronous)
    if target is None:
        best = min(_tier(m, tiers) for m in better)
        holding = next((m for m in healthy if m.synchronous and _tier(m, tiers) > best), None)
        if holding:
            return TierStep("restart", f"{why}: restarting {holding.name} (synchronous standby, tier "
                                       f"{_tier(holding, tiers)}) so that the writer picks one", holding)  # fmt: skip
        return TierStep("wait", f"{why} (writer {writer.name} has tier {_tier(writer, tiers)})")
    return TierStep("switchover", f"writer {writer.name} has tier {_tier(writer, tiers)}; {why}", target)


def before_scale_in(members: list[Member], leader: str | None, wanted: int, tiers: tuple[int, ...],
                    synchronous: bool) -> TierStep:  # fmt: skip
    """Scaling in removes the highest ordinals: a writer among them first hands over to a
    member that stays (the caller keeps the members up to the writer's meanwhile, so those
    above it go first and a synchronous standby is among the ones that stay). Any synchronous
    standby that stays will do, the best tier among them first."""
    writer = next((m for m in members if m.name == leader), None)
    if writer is None or writer.ordinal < wanted:
        return TierStep("none", "the writer stays")
    staying = [m for m in members if m.ordinal < wanted and _healthy(m, writer.name)]
    if synchronous:
        staying = [m for m in staying if m.synchronous] or staying
    target, why = best_target(staying, tiers, synchronous)
    if target is None:
        return TierStep("wait", f"writer {writer.name} is among the members scaling in removes; {why}")
    return TierStep("switchover", f"writer {writer.name} is among the members scaling in removes; {why}", target)
