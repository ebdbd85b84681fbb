"""The MariaDB member's HA decision: what the agent observed in, one readable action out. Pure.

The leader Lease is the one truth about who is primary. Replication is GTID based and
semi-synchronous (AFTER_SYNC, a timeout that never falls back to asynchronous while Multi-AZ):
a commit the primary acknowledged is in the relay log of at least `acks` replicas — received
(Gtid_IO_Pos), not necessarily applied. The rules:

- the holder renews the lease while its mariadbd answers, and lets it go once it has not
  answered for RELEASE_AFTER_FAILURES loops;
- a member follows the holder, read-only. A writable member that is not the holder demotes
  itself; what it wrote beyond the holder was never acknowledged, so it is errant: it rejoins
  (restarting mariadbd with the semi-synchronous replica crash recovery discards the tail), and
  when the tail survived that restart it was committed and the member is re-seeded. A
  read-only member with transactions the holder lacks stops replicating and reports them: it
  never follows, never becomes primary, and nothing is merged (mariadbd always starts
  read-only with that crash recovery, so such a tail is committed). The errant GTIDs are named.
  Positions keep one GTID a domain, so the lease records where its holder took over (`since`):
  past that only the holder writes, and a GTID there by another server is a tail too;
- failover, when the lease is free or lapsed (and automatic failover is on), fences first:
  every replica stops its IO thread, so an old primary that is only frozen can get no
  acknowledgement any more. Then the candidate is, among the members that answer (at least
  all but `acks` of them, or an acknowledged commit may sit only on one that does not), all
  fenced, not errant, the one that holds the most (received or applied); on a tie the old
  primary if it still answers (no failover needed), else the lower ordinal. It promotes once
  its SQL thread applied all it received; the others wait. Positions that diverged (none
  holds everything the others hold) are waited on, never picked from;
- the first primary is member 0, when the lease never existed and no member has data;
- a member that finds the lease in its own name from before it restarted lets it go: the
  crash recovery may have discarded a tail a replica received, so the election decides. A
  single member takes it again; with automatic failover off so does the restarted primary;
- with automatic failover off, a lease that lapsed in another member's name is waited for,
  never taken (a lease let go is still taken: nothing is lost by that);
- the API server not answering: a primary that has not renewed for `fence_after` seconds stops
  writes (the lease may move under it); everyone else waits;
- a switchover (`switchover_to`): the primary stops writes, waits (renewing) until the
  candidate applied everything it executed, then hands the lease over. The candidate holds
  it from then on like any holder, and promotes.

Action kinds, for the agent to carry out:

    renew         keep the lease (the holder)
    promote       take the lease if free; STOP SLAVE, RESET SLAVE ALL, read_only off
    follow        CHANGE MASTER TO target MASTER_USE_GTID=slave_pos, START SLAVE, read_only on
    demote        read_only on, then follow target
    rejoin        read_only on, restart mariadbd with the semi-sync replica crash recovery
                  (the unacknowledged tail is discarded), then follow target
    reseed        the tail survived the recovery: keep the data aside and seed from target
    errant        STOP SLAVE and report the errant GTIDs; a person decides
    fence         STOP SLAVE IO_THREAD (the old primary gets no acknowledgement from here)
    fence_writes  read_only on, the lease is kept
    apply         START SLAVE SQL_THREAD: the candidate's relay log must be applied first
    release       let the lease go
    hand_over     write the lease in target's name (switchover)
    wait          nothing to do now
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.agent.mariadb.gtid import EMPTY, GtidPos, ahead, covers, diverged, errant, most_advanced

RELEASE_AFTER_FAILURES = 2


@dataclass(frozen=True)
class Member:
    """A member as seen through its mariadbd (and SHOW SLAVE STATUS)."""

    name: str
    ordinal: int
    answers: bool = True  # false: its mariadbd did not answer
    writable: bool = False  # read_only off
    executed: GtidPos = EMPTY  # @@gtid_current_pos: applied or written here
    received: GtidPos = EMPTY  # Gtid_IO_Pos: in its relay log (empty when never a replica)
    io_running: bool = False  # Slave_IO_Running (Connecting counts: it may yet acknowledge)
    sql_running: bool = False  # Slave_SQL_Running
    following: str | None = None  # the member it replicates from (Master_Host)
    io_error: str = ""  # Last_IO_Error
    lag: float | None = None  # Seconds_Behind_Master; None: unknown
    errant: bool = False  # it reported errant GTIDs and stopped replicating

    @property
    def holds(self) -> GtidPos:
        """Everything it has, applied or only received."""
        return self.executed.furthest(self.received)


@dataclass(frozen=True)
class Lease:
    holder: str | None  # None: free (released, or never held)
    fresh: bool  # renewed within its duration
    exists: bool = True
    since: GtidPos | None = None  # the holder's executed position when it took the lease (the agent
    # records it in the lease): after it, only the holder writes; None: not recorded


@dataclass(frozen=True)
class Seen:
    """One loop's observation. The peers' servers are read after this member's own, so a
    replica is never found ahead of a primary that only moved on in between."""

    me: Member
    lease: Lease | None  # None: the API server did not answer
    peers: tuple[Member, ...] = ()
    failures: int = 0  # consecutive loops this member's own mariadbd did not answer
    renewed_ago: float = 0.0  # seconds since this member last renewed the lease (when it holds it)
    took_lease: bool = False  # the lease was taken by, or handed to, this member during this run
    # of the agent (a holder of the same name from before a restart is stale)
    fence_after: float = 4.0  # a primary cut off from the API server stops writes this soon
    automatic_failover: bool = True  # false: a lapsed lease is waited for, never taken by another member
    switchover_to: str | None = None  # the operator asked the primary to hand over to this member
    members_total: int | None = None  # the members there should be; None: this one and its peers
    acks: int = 1  # rpl_semi_sync_master_wait_for_slave_count; 0: asynchronous, no such guarantee
    recovered: bool = False  # the agent already restarted mariadbd with crash recovery to rejoin

    @property
    def total(self) -> int:
        return self.members_total or 1 + len(self.peers)

    def peer(self, name: str) -> Member | None:
        return next((m for m in self.peers if m.name == name), None)


@dataclass(frozen=True)
class Action:
    kind: str  # see the module docstring
    reason: str
    target: str | None = None  # the member to follow, seed from or hand the lease to


def decide(seen: Seen) -> Action:
    me, lease = seen.me, seen.lease
    if lease is None:
        return _cut_off(seen)
    if lease.holder == me.name and not seen.took_lease:
        return _restarted(seen)
    if lease.holder == me.name and lease.fresh:
        return _holding(seen)
    if lease.holder and lease.fresh:
        return _follow(seen, lease.holder)
    if lease.holder and lease.holder != me.name and not seen.automatic_failover:
        return Action("wait", f"{lease.holder}'s lease lapsed and automatic failover is off: waiting for it")
    return _free(seen)


def _cut_off(seen: Seen) -> Action:
    if seen.me.writable and seen.renewed_ago >= seen.fence_after:
        return Action("fence_writes", f"the API server has not answered for {seen.renewed_ago:.0f} s: the lease "
                      "may move, writes stopped")  # fmt: skip
    return Action("wait", "the API server does not answer")


def _restarted(seen: Seen) -> Action:
    me = seen.me
    again = "single member" if seen.total == 1 else "" if seen.automatic_failover else "automatic failover is off"
    if not again:
        return Action("release", "the lease is this member's from before it restarted: the crash recovery may "
                      "have discarded commits a replica received, letting the election decide")  # fmt: skip
    if not me.answers:
        return Action("wait", f"restarted ({again}): the lease waits for this member's mariadbd")
    return Action("promote", f"{again}: primary again")


def _holding(seen: Seen) -> Action:
    me = seen.me
    if not me.answers:
        if seen.failures >= RELEASE_AFTER_FAILURES and seen.automatic_failover:
            return Action("release", "this member's mariadbd does not answer: letting the lease go")
        return Action("wait", "this member's mariadbd does not answer (holding the lease for now)")
    if seen.switchover_to and seen.switchover_to != me.name:
        return _switchover(seen, seen.switchover_to)
    if not me.writable:
        if not covers(me.executed, me.received):
            return Action("renew", f"holding the lease: applying the relay log first "
                          f"({ahead(me.received, me.executed)} transactions to go)")  # fmt: skip
        return Action("promote", "holding the lease: promoted self")
    return Action("renew", "primary: renewed the lease")


def _switchover(seen: Seen, to: str) -> Action:
    me, candidate = seen.me, seen.peer(to)
    problem = _unfit_for_switchover(seen, candidate, to)
    if problem:  # never left read-only by a switchover that cannot finish
        if me.writable:
            return Action("renew", f"switchover to {to} on hold: {problem}")
        return Action("promote", f"switchover to {to} on hold: {problem}; writes open again")
    if me.writable:
        return Action("fence_writes", f"switchover to {to}: writes stopped", to)
    if not covers(candidate.executed, me.executed):
        behind = ahead(me.executed, candidate.executed)
        return Action("renew", f"switchover to {to}: writes stopped, waiting for {to} to apply {behind} "
                      "transactions")  # fmt: skip
    return Action("hand_over", f"switchover to {to}: it applied every commit ({me.executed}): handing the "
                  "lease over", to)  # fmt: skip


def _unfit_for_switchover(seen: Seen, candidate: Member | None, to: str) -> str:
    if candidate is None:
        return f"{to} is not a member"
    if not candidate.answers:
        return f"{to} does not answer"
    # Read after this member's own state, the candidate may be ahead by this member's newest
    # commits (same server id): only transactions another server wrote are errant here.
    mine = seen.me.executed.domains
    foreign = {d: g for d, g in candidate.executed.domains.items() if d not in mine or g.server_id != mine[d].server_id}
    tail = errant(GtidPos(foreign), seen.me.executed)
    if candidate.errant or tail:
        return f"{to} has errant transactions ({', '.join(tail) or 'reported'})"
    if candidate.following != seen.me.name:
        return f"{to} does not replicate from this member"
    return ""


def _follow(seen: Seen, holder: str) -> Action:
    me, primary = seen.me, seen.peer(holder)
    if not me.answers:
        return Action("wait", "waiting for this member's mariadbd to answer")
    if primary is None or not primary.answers:
        # Its position is needed to tell an unacknowledged tail; meanwhile, writes here get no
        # acknowledgement: the replicas follow the holder.
        return Action("wait", f"{holder} holds the lease but does not answer{_io(me)}")
    tail = _errant_against(me.executed, primary.executed, seen.lease.since)
    if tail:
        return _errant(seen, holder, ", ".join(tail))
    if me.writable:
        return Action("demote", f"{holder} holds the lease: read-only, following it", holder)
    if me.following != holder:
        return Action("follow", f"following the primary {holder}{_io(me)}", holder)
    if not (me.io_running and me.sql_running):
        stopped = " and ".join(t for t, up in (("IO", me.io_running), ("SQL", me.sql_running)) if not up)
        return Action("follow", f"replica of {holder}: the {stopped} thread stopped, restarting it{_io(me)}", holder)
    lag = "lag unknown" if me.lag is None else f"{me.lag:.0f} s behind"
    return Action("wait", f"replica: following {holder}, {lag}{_io(me)}")


def _errant_against(mine: GtidPos, primary: GtidPos, since: GtidPos | None) -> list[str]:
    tail = errant(mine, primary)
    if tail or since is None:
        return tail
    # Behind the primary yet past where it took over, by another server: an old primary's tail
    # that the new one has since written over (positions alone cannot see it).
    forked = {d: g for d, g in mine.domains.items() if g.seq > since.seq(d) and g.server_id != _writer(primary, d)}
    return errant(GtidPos(forked), since)


def _writer(primary: GtidPos, domain: int) -> int | None:
    gtid = primary.domains.get(domain)
    return gtid.server_id if gtid else None


def _errant(seen: Seen, holder: str, tail: str) -> Action:
    if seen.recovered:
        return Action("reseed", f"errant transactions survived the crash recovery (committed): {tail}; the "
                      f"data is kept aside and seeded again from {holder}", holder)  # fmt: skip
    if seen.me.writable:
        return Action("rejoin", f"{holder} holds the lease and this member has an unacknowledged tail it lacks: "
                      f"{tail}; restarting with crash recovery to discard it", holder)  # fmt: skip
    return Action("errant", f"errant transactions {holder} lacks: {tail}; replication stopped, never a "
                  "candidate")  # fmt: skip


def _io(member: Member) -> str:
    return f" (IO thread: {member.io_error})" if member.io_error else ""


def _free(seen: Seen) -> Action:
    me, lease = seen.me, seen.lease
    if not me.answers:
        return Action("wait", "the lease is free; this member's mariadbd does not answer")
    if me.io_running:
        return Action("fence", "stopped the IO thread: the old primary can get no acknowledgement from this member")
    answering = [m for m in (me, *seen.peers) if m.answers]
    if not lease.exists and all(m.holds.is_empty for m in answering):
        if me.ordinal == 0:
            return Action("promote", "no primary ever: member 0 bootstraps as primary")
        return Action("wait", "no primary ever: waiting for member 0 to bootstrap")
    refusal = _not_yet(seen, answering)
    if refusal:
        return Action("wait", refusal)
    best = _candidate(answering)
    if best.name != me.name:
        return Action("wait", f"the lease is free: {best.name} has every acknowledged commit ({best.holds}) and "
                      "goes first")  # fmt: skip
    if not covers(me.executed, me.received):
        to_go = ahead(me.received, me.executed)
        if not me.sql_running:
            return Action("apply", f"the lease is free and this member goes first: its SQL thread was stopped, "
                          f"started it to apply its relay log ({to_go} transactions to go)")  # fmt: skip
        return Action("wait", f"the lease is free and this member goes first: applying its relay log "
                      f"({to_go} transactions to go)")  # fmt: skip
    return Action("promote", f"the lease is free and this member has every acknowledged commit ({me.holds}): "
                  "promoted self")  # fmt: skip


def _not_yet(seen: Seen, answering: list[Member]) -> str:
    """Why no member may be chosen yet ("" when one may)."""
    if seen.acks and len(answering) < seen.total - seen.acks:
        return (f"only {len(answering)} of {seen.total} members answer: an acknowledged commit may be "
                "only on one that does not")  # fmt: skip
    unfenced = [m.name for m in answering if m.io_running]
    if unfenced:
        return f"waiting for {', '.join(unfenced)} to stop the IO thread"
    if seen.me.errant:
        return "this member reported errant transactions: never a candidate"
    pool = {m.name: m.holds for m in answering if not m.errant}
    if not pool:
        return "no member that answers may become primary"
    if diverged(pool):
        listed = "; ".join(f"{name} {str(pool[name]) or 'empty'}" for name in most_advanced(pool))
        return f"positions diverged, no member has every other's transactions ({listed}): not choosing"
    return ""


def _candidate(answering: list[Member]) -> Member:
    pool = [m for m in answering if not m.errant]
    first = {m.name: m for m in pool}[most_advanced({m.name: m.holds for m in pool})[0]]
    ties = [m for m in pool if covers(m.holds, first.holds) and covers(first.holds, m.holds)]
    # The old primary first when it still answers and nobody has more: no failover needed.
    return min(ties, key=lambda m: (not m.writable, m.ordinal))
