"""MariaDB: the agents' HA decision (observation in, readable action out), as data. Each case is
one in which users of GTID semi-sync replication report losing writes."""

from __future__ import annotations

from kuberds.agent.mariadb.decide import Action, Lease, Member, Seen, decide
from kuberds.agent.mariadb.gtid import GtidPos

FREE = Lease(None, False)
NEVER = Lease(None, False, exists=False)


def held(by: str, since: str | None = None) -> Lease:
    return Lease(by, True, since=None if since is None else GtidPos.parse(since))


def lapsed(by: str) -> Lease:
    return Lease(by, False)


def primary(ordinal: int, executed: str = "0-1-100", **kw) -> Member:
    return Member(f"db-{ordinal}", ordinal, writable=True, executed=GtidPos.parse(executed), **kw)


def replica(ordinal: int, received: str = "0-1-100", applied: str | None = None, *, fenced: bool = False,
            following: str | None = "db-0", **kw) -> Member:  # fmt: skip
    """A read-only member; `fenced`: its IO thread stopped, its SQL thread still applying."""
    executed = GtidPos.parse(received if applied is None else applied)
    return Member(f"db-{ordinal}", ordinal, executed=executed, received=GtidPos.parse(received),
                  io_running=not fenced, sql_running=True, following=following, **kw)  # fmt: skip


def down(ordinal: int) -> Member:
    return Member(f"db-{ordinal}", ordinal, answers=False)


def seen(me: Member, lease: Lease | None, *peers: Member, **kw) -> Seen:
    return Seen(me, lease, peers, **{"took_lease": True, **kw})


def check(action: Action, kind: str, *words: str, target: str | None = None) -> None:
    assert action.kind == kind, action
    assert all(w in action.reason for w in words), action
    if target is not None:
        assert action.target == target, action


# ---------------------------------------------------------------- steady state


def test_the_holder_renews_and_a_read_only_holder_opens_writes_once_applied() -> None:
    check(decide(seen(primary(0), held("db-0"), replica(1))), "renew", "primary: renewed the lease")
    check(decide(seen(replica(1, following=None), held("db-1"))), "promote", "holding the lease: promoted self")
    # A holder with relay log left applies it first, and keeps the lease meanwhile.
    behind = replica(1, "0-1-120", "0-1-117", fenced=True)
    check(decide(seen(behind, held("db-1"))), "renew", "applying the relay log first (3 transactions to go)")


def test_replicas_follow_the_holder_and_report_a_broken_io_thread() -> None:
    check(decide(seen(replica(1, following=None), held("db-0"), primary(0))), "follow", "following the primary db-0",
          target="db-0")  # fmt: skip
    check(decide(seen(replica(1, lag=3.2), held("db-0"), primary(0))), "wait", "replica: following db-0, 3 s behind")
    check(decide(seen(replica(1), held("db-0"), primary(0))), "wait", "lag unknown")
    broken = replica(1, fenced=True, io_error="error connecting to master: Access denied")
    check(decide(seen(broken, held("db-0"), primary(0))), "follow", "the IO thread stopped", "Access denied",
          target="db-0")  # fmt: skip
    # The holder's server does not answer: nothing to compare with yet, the error is still told.
    check(decide(seen(broken, held("db-0"), down(0))), "wait", "db-0 holds the lease but does not answer",
          "Access denied")  # fmt: skip


def test_a_holder_whose_server_stops_answering_lets_the_lease_go() -> None:
    check(decide(seen(down(0), held("db-0"), replica(1), failures=1)), "wait", "holding the lease for now")
    check(decide(seen(down(0), held("db-0"), replica(1), failures=2)), "release", "does not answer")
    check(decide(seen(down(0), held("db-0"), failures=5, automatic_failover=False)), "wait", "does not answer")


# ---------------------------------------------------------------- failover


def test_every_replica_fences_first_when_the_lease_lapses() -> None:
    action = decide(seen(replica(1), lapsed("db-0"), down(0), replica(2)))
    check(action, "fence", "stopped the IO thread", "no acknowledgement from this member")
    # Fenced itself, a member still waits for the others to fence before anyone is chosen.
    check(decide(seen(replica(1, fenced=True), lapsed("db-0"), down(0), replica(2))), "wait",
          "waiting for db-2 to stop the IO thread")  # fmt: skip


def test_failover_goes_to_the_replica_that_received_most_not_the_one_that_applied_most() -> None:
    # A (db-1) received 0-1-120 but applied only 0-1-90; B (db-2) applied all it got, 0-1-110.
    # An acknowledged commit may be 0-1-120: only A has it. B must not win by applying faster.
    a = replica(1, "0-1-120", "0-1-90", fenced=True)
    b = replica(2, "0-1-110", fenced=True)
    check(decide(seen(b, lapsed("db-0"), down(0), a)), "wait", "db-1 has every acknowledged commit (0-1-120)")
    check(decide(seen(a, lapsed("db-0"), down(0), b)), "wait", "applying its relay log (30 transactions to go)")
    applied = replica(1, "0-1-120", fenced=True)
    check(decide(seen(applied, lapsed("db-0"), down(0), b)), "promote",
          "the lease is free and this member has every acknowledged commit (0-1-120): promoted self")  # fmt: skip
    check(decide(seen(b, lapsed("db-0"), down(0), applied)), "wait", "db-1 has every acknowledged commit")


def test_a_stopped_sql_thread_is_told_while_the_relay_log_waits() -> None:
    stuck = Member("db-1", 1, executed=GtidPos.parse("0-1-90"), received=GtidPos.parse("0-1-120"))
    check(decide(seen(stuck, FREE, down(0))), "apply", "SQL thread was stopped", "30 transactions to go")


def test_a_tie_goes_to_the_lower_ordinal_or_to_the_old_primary_that_still_answers() -> None:
    one, two = replica(1, fenced=True), replica(2, fenced=True)
    check(decide(seen(one, lapsed("db-0"), down(0), two)), "promote", "promoted self")
    check(decide(seen(two, lapsed("db-0"), down(0), one)), "wait", "db-1 has every acknowledged commit")
    # The primary's agent missed renewals but its server is fine and has all: no failover.
    old = primary(2)
    check(decide(seen(replica(1, fenced=True, following="db-2"), lapsed("db-2"), replica(0, fenced=True), old)),
          "wait", "db-2 has every acknowledged commit")  # fmt: skip
    check(decide(seen(old, lapsed("db-2"), replica(0, fenced=True), replica(1, fenced=True))), "promote",
          "promoted self")  # fmt: skip


def test_an_acknowledged_commit_on_a_member_that_does_not_answer_blocks_the_choice() -> None:
    # Three members, one acknowledgement: with the primary and a replica gone, the commit may be
    # on that replica only.
    check(decide(seen(replica(1, fenced=True), lapsed("db-0"), down(0), down(2))), "wait",
          "only 1 of 3 members answer", "an acknowledged commit may be only on one that does not")  # fmt: skip
    # Two members: the one replica has every acknowledged commit.
    check(decide(seen(replica(1, fenced=True), lapsed("db-0"), down(0))), "promote", "promoted self")


def test_diverged_positions_are_refused_never_picked() -> None:
    # Each has a domain the other lacks the tail of: whoever wins, the other's commits are lost.
    a = replica(1, "0-1-100,1-4-9", fenced=True)
    b = replica(2, "0-1-120,1-4-3", fenced=True)
    action = decide(seen(a, FREE, down(0), b))
    check(action, "wait", "positions diverged", "db-1 0-1-100,1-4-9", "db-2 0-1-120,1-4-3", "not choosing")
    check(decide(seen(b, FREE, down(0), a)), "wait", "positions diverged")
    # The same seq_no from two servers: two different transactions.
    c, d = replica(1, "0-1-100", fenced=True), replica(2, "0-3-100", fenced=True)
    check(decide(seen(c, FREE, down(0), d)), "wait", "positions diverged")


def test_an_errant_replica_is_never_a_candidate() -> None:
    # db-1 has the most, but reported errant transactions: db-2 goes first.
    bad = replica(1, "0-1-130", fenced=True, errant=True)
    good = replica(2, "0-1-110", fenced=True)
    check(decide(seen(good, FREE, down(0), bad)), "promote", "every acknowledged commit (0-1-110)")
    check(decide(seen(bad, FREE, down(0), good)), "wait", "errant transactions: never a candidate")


def test_a_read_only_replica_with_transactions_the_primary_lacks_stops_and_reports() -> None:
    written_on_the_side = replica(1, "0-1-100,3-2-4")
    action = decide(seen(written_on_the_side, held("db-0"), primary(0, "0-1-120")))
    check(action, "errant", "3-2-4 (domain 3 is not on the primary)", "replication stopped", "never a candidate")
    assert action.target is None


def test_with_automatic_failover_off_a_lapsed_lease_is_waited_for() -> None:
    off = {"automatic_failover": False}
    check(decide(seen(replica(1), lapsed("db-0"), down(0), **off)), "wait", "automatic failover is off")
    # A lease let go (a clean stop) is still taken: nothing is lost by that.
    check(decide(seen(replica(1, fenced=True), FREE, down(0), **off)), "promote", "promoted self")


# ---------------------------------------------------------------- a primary that comes back


def test_the_old_primary_returns_writable_with_an_unacknowledged_tail_and_rejoins() -> None:
    # db-0 was frozen (SIGSTOP) with 0-1-101..105 waiting for acknowledgement; db-1 took over at 0-1-100.
    old = primary(0, "0-1-105")
    action = decide(seen(old, held("db-1", since="0-1-100"), replica(1, "0-1-100", following=None)))
    check(action, "rejoin", "0-1-101..0-1-105 (5 transactions)", "restarting with crash recovery", target="db-1")
    # The new primary has written past the tail since: the tail is still found, from the lease.
    action = decide(seen(old, held("db-1", since="0-1-100"), primary(1, "0-2-140")))
    check(action, "rejoin", "0-1-101..0-1-105 (5 transactions)", target="db-1")
    # The tail survived the restart: it was committed. Re-seeded, the GTIDs named, never merged.
    after = replica(0, "0-1-105", following=None)
    action = decide(seen(after, held("db-1", since="0-1-100"), primary(1, "0-2-140"), recovered=True))
    check(action, "reseed", "survived the crash recovery", "0-1-101..0-1-105", target="db-1")


def test_a_frozen_primary_that_comes_back_demotes_itself() -> None:
    # Nothing was written while it was frozen (the replicas fenced): read-only, then follow.
    action = decide(seen(primary(0, "0-1-100"), held("db-1", since="0-1-100"), primary(1, "0-2-130")))
    check(action, "demote", "db-1 holds the lease", "read-only", target="db-1")
    # Back before anyone took over, it still has everything: it takes its lease again.
    check(decide(seen(primary(0, "0-1-105"), lapsed("db-0"), replica(1, fenced=True), replica(2, fenced=True))),
          "promote", "every acknowledged commit (0-1-105)")  # fmt: skip


def test_a_member_that_restarted_finds_its_old_lease_and_lets_it_go() -> None:
    back = replica(0, "0-1-100", following=None, fenced=True)
    restarted = {"took_lease": False}
    check(decide(seen(back, held("db-0"), replica(1), **restarted)), "release", "from before it restarted",
          "crash recovery may have discarded")  # fmt: skip
    check(decide(seen(down(0), held("db-0"), replica(1), **restarted)), "release", "letting the election decide")
    # Automatic failover off: the restarted primary is waited for, then primary again.
    off = {**restarted, "automatic_failover": False}
    check(decide(seen(down(0), held("db-0"), replica(1), **off)), "wait", "waits for this member's mariadbd")
    check(decide(seen(back, held("db-0"), replica(1), **off)), "promote", "automatic failover is off: primary again")


def test_a_single_member_is_primary_again() -> None:
    alone = replica(0, "0-1-100", following=None, fenced=True)
    check(decide(seen(alone, held("db-0"), took_lease=False)), "promote", "single member: primary again")
    check(decide(seen(alone, lapsed("db-0"))), "promote", "promoted self")


def test_bootstrap_is_member_0_when_no_lease_ever_and_no_data() -> None:
    empty = {"received": "", "following": None, "fenced": True}
    check(decide(seen(replica(0, **empty), NEVER, replica(1, **empty))), "promote", "member 0 bootstraps")
    check(decide(seen(replica(1, **empty), NEVER, replica(0, **empty))), "wait", "waiting for member 0")
    # A lease deleted by hand while members hold data is only free: the one with the data wins.
    check(decide(seen(replica(0, **empty), NEVER, replica(1, "0-1-50", fenced=True))), "wait",
          "db-1 has every acknowledged commit (0-1-50)")  # fmt: skip


def test_a_primary_cut_off_from_the_api_server_stops_writes() -> None:
    check(decide(seen(primary(0), None, replica(1), renewed_ago=2.0)), "wait", "the API server does not answer")
    check(decide(seen(primary(0), None, replica(1), renewed_ago=4.5)), "fence_writes", "not answered for 4 s",
          "writes stopped")  # fmt: skip
    check(decide(seen(replica(1), None, primary(0), renewed_ago=60.0)), "wait", "the API server does not answer")


# ---------------------------------------------------------------- switchover


def test_a_switchover_stops_writes_then_hands_over_once_the_candidate_applied_all() -> None:
    to_1 = {"switchover_to": "db-1"}
    lease = held("db-0")
    check(decide(seen(primary(0, "0-1-100"), lease, replica(1), **to_1)), "fence_writes",
          "switchover to db-1: writes stopped", target="db-1")  # fmt: skip
    stopped = replica(0, "0-1-100", following=None, fenced=True)
    check(decide(seen(stopped, lease, replica(1, "0-1-100", "0-1-96"), **to_1)), "renew",
          "waiting for db-1 to apply 4 transactions")  # fmt: skip
    check(decide(seen(stopped, lease, replica(1, "0-1-100"), **to_1)), "hand_over", "applied every commit (0-1-100)",
          target="db-1")  # fmt: skip
    # The candidate holds the lease from then on and promotes.
    check(decide(seen(replica(1, "0-1-100"), held("db-1", since="0-1-100"), stopped)), "promote", "promoted self")


def test_a_switchover_that_cannot_finish_never_leaves_the_primary_read_only() -> None:
    to_1 = {"switchover_to": "db-1"}
    check(decide(seen(primary(0), held("db-0"), down(1), **to_1)), "renew", "on hold: db-1 does not answer")
    stopped = replica(0, "0-1-100", following=None, fenced=True)
    check(decide(seen(stopped, held("db-0"), down(1), **to_1)), "promote", "writes open again")
    forked = replica(1, "0-1-100,2-7-3")
    check(decide(seen(primary(0), held("db-0"), forked, **to_1)), "renew", "db-1 has errant transactions (2-7-3")
    check(decide(seen(primary(0), held("db-0"), replica(1, following="db-2"), **to_1)), "renew",
          "does not replicate from this member")  # fmt: skip


def test_a_candidate_read_after_the_primary_may_be_ahead_by_its_commits_without_being_errant() -> None:
    me = primary(0, "0-1-100")
    ahead = replica(1, "0-1-103", following="db-0")
    check(decide(seen(me, held("db-0"), ahead, switchover_to="db-1")), "fence_writes", "switchover to db-1")
    foreign = replica(1, "0-2-103", following="db-0")
    check(decide(seen(me, held("db-0"), foreign, switchover_to="db-1")), "renew", "on hold", "errant")
