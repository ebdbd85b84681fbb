"""The Redis member's HA decision: what the agent observed in, one readable action out. Pure.

The leader Lease (kuberds.contract.redis) is the one truth about who is primary:

- the holder renews it while its Redis answers; a holder whose Redis stops answering lets it
  go at once, so a replica need not wait for the lease to lapse;
- a member follows the holder whoever it is, and a master that is not the holder demotes
  itself (its writes since the holder took over are discarded by the resync);
- when the lease is free or lapsed, the candidate is the member with the most data among
  those that answer — the largest replication offset, the lower ordinal on a tie — and only
  a member that has data: a replica that completed a sync since it started, or the old
  primary itself. A member that restarted empty is never a candidate, so it never becomes a
  primary whose empty dataset the replicas would copy;
- a member that finds the lease in its own name from before it restarted lets it go at once
  (its Redis restarted empty), so the replicas need not wait for it to lapse;
- the first primary is member 0 when there is no lease and no member that answers has data
  (a lease deleted by hand while members hold data is only free); if every member answers
  and none has data (all restarted empty), member 0 starts over as an empty primary.

With automatic failover off (spec.automaticFailover false), a lease that lapsed in another
member's name is waited for, never taken: no replica promotes itself. A primary that comes
back empty takes its lease again and the replicas resync from it, losing the data — what
ElastiCache does without automatic failover, and what the user chose. A lease let go on a
clean stop is still handed over (nothing is lost by that).
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.agent.lease import Lease

MASTER, REPLICA = "master", "replica"


@dataclass(frozen=True)
class Member:
    """A member as seen through its Redis (INFO replication); `role` None: it did not answer."""

    name: str
    ordinal: int
    role: str | None = None
    offset: int = 0
    has_data: bool = False  # a master, or a replica that completed a sync since it started


@dataclass(frozen=True)
class Seen:
    me: Member
    following: str | None  # the member name this one replicates from (None: none)
    lease: Lease | None  # None: the API server did not answer
    peers: tuple[Member, ...] = ()
    redis_failures: int = 0  # consecutive loops this member's own Redis did not answer
    renewed_ago: float = 0.0  # seconds since this member last renewed the lease (when it holds it)
    took_lease: bool = False  # this run of the agent took the lease (a holder of the same name
    # from before a restart is a dead member: its Redis restarted empty)
    fence_after: float = 4.0  # a primary cut off from the API server stops writes this soon
    automatic_failover: bool = True  # false: a lapsed lease is waited for, never taken by another member


@dataclass(frozen=True)
class Action:
    kind: str  # renew, promote, follow, demote, release, fence, wait
    reason: str
    target: str | None = None  # the member to follow


RELEASE_AFTER_FAILURES = 2


def decide(seen: Seen) -> Action:
    me, lease = seen.me, seen.lease
    if lease is None:
        if me.role == MASTER and seen.renewed_ago >= seen.fence_after:
            return Action("fence", f"the API server has not answered for {seen.renewed_ago:.0f} s: the lease may "
                          "move, writes paused")  # fmt: skip
        return Action("wait", "the API server does not answer")
    if lease.holder == me.name and not seen.took_lease:
        if not seen.automatic_failover and me.role is None:
            return Action("wait", "restarted, automatic failover is off: the lease waits for this member's Redis")
        if not seen.automatic_failover:
            return Action("promote", "restarted empty and automatic failover is off: primary again, empty; the "
                          "replicas resync from it")  # fmt: skip
        return Action("release", "the lease is this member's from before it restarted empty: letting it go")
    if lease.holder == me.name and lease.fresh:
        return _holding(seen)
    if lease.holder and lease.fresh:
        return _follow(seen, lease.holder)
    if lease.holder and lease.holder != me.name and not seen.automatic_failover:
        return Action("wait", f"{lease.holder}'s lease lapsed and automatic failover is off: waiting for it")
    return _free(seen)


def _holding(seen: Seen) -> Action:
    me = seen.me
    if me.role is None:
        if seen.redis_failures >= RELEASE_AFTER_FAILURES and seen.automatic_failover:
            return Action("release", "this member's Redis does not answer: letting the lease go")
        return Action("wait", "this member's Redis does not answer (holding the lease for now)")
    if me.role != MASTER:
        return Action("promote", "holding the lease: promoted self")
    return Action("renew", "primary: renewed the lease")


def _follow(seen: Seen, holder: str) -> Action:
    me = seen.me
    if me.role is None:
        return Action("wait", "waiting for this member's Redis to answer")
    if me.role == MASTER:
        return Action("demote", f"{holder} holds the lease: demoted self to follow it", holder)
    if seen.following != holder:
        return Action("follow", f"following the primary {holder}", holder)
    return Action("wait", f"replica: following {holder}")


def _free(seen: Seen) -> Action:
    me, lease = seen.me, seen.lease
    if me.role is None:
        return Action("wait", "the lease is free; this member's Redis does not answer")
    answering = [m for m in (me, *seen.peers) if m.role is not None]
    with_data = [m for m in answering if m.has_data]
    if not lease.exists and not with_data:  # a lease deleted while members have data is just free
        if me.ordinal == 0:
            return Action("promote", "no primary ever: member 0 bootstraps as primary")
        return Action("wait", "no primary ever: waiting for member 0 to bootstrap")
    if not with_data:
        if len(answering) == 1 + len(seen.peers) and me.ordinal == min(m.ordinal for m in answering):
            return Action("promote", "every member answers and none has data: starting over as an empty primary")
        return Action("wait", "the lease is free and no member that answers has data (restarted empty): waiting")
    best = max(with_data, key=lambda m: (m.offset, -m.ordinal))
    if best.name != me.name:
        return Action("wait", f"the lease is free: {best.name} has the most data (offset {best.offset}) and goes first")
    return Action("promote", f"the lease is free and this member has the most data (offset {me.offset}): "
                  "promoted self")  # fmt: skip
