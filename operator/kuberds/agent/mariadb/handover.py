"""Planned handovers of the primary role: the operator's switchover (POST /switchover on the
agent's API, for rollouts) and a clean stop of the primary (its pod deleted or rolled), which
is the same switchover to the replica that follows it with the most. Both run the HA loop's
own rules (decide: stop writes, wait until the candidate applied every commit, hand it the
Lease), so the candidate promotes as any holder does."""

from __future__ import annotations

import logging
import time

from kuberds.agent.mariadb.gtid import most_advanced

log = logging.getLogger("kuberds.agent")

LOOP_SECONDS = 1.0  # the agent's HA loop
SWITCHOVER_SECONDS = 25  # within the operator's 30 s wait for the answer
HANDOVER_SECONDS = 20  # a clean stop's switchover, well within the pod's 60 s grace period


class Handover:
    """Mixed into the MariaDB agent: uses its lease, peers, last view and loop step."""

    def switch_over(self, request: dict) -> tuple[int, str]:
        """POST /switchover {leader, candidate}: the loop stops writes, waits for the candidate
        to apply every commit and hands it the lease; answered once the candidate holds it."""
        candidate = str(request.get("candidate") or "")
        if not self._primary_within(3 * LOOP_SECONDS):  # a loop may be under way: its view is a loop old
            return 409, f"{self.me} is not the primary"
        if candidate not in self.peers.addresses or candidate == self.me:
            return 400, f"candidate {candidate!r} is not another member"
        self.switchover_to = candidate
        deadline = time.monotonic() + SWITCHOVER_SECONDS
        try:
            while time.monotonic() < deadline:
                if self.lease is not None and self._holder() == candidate:
                    return 200, f"{candidate} holds the lease: switched over from {self.me}"
                if self.last is not None and "on hold" in self.last.reason:
                    return 409, self.last.reason
                time.sleep(0.2)
            return 503, f"no switchover to {candidate} within {SWITCHOVER_SECONDS} s"
        finally:
            self.switchover_to = None

    def _primary_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.last is not None and self.last.kind == "renew" and self.mine is not None and self.mine.writable:
                return True
            time.sleep(0.1)
        return False

    def hand_over_on_stop(self) -> None:
        """A clean stop of the primary is a planned switchover to the replica that follows it
        with the most (so no election waits on a member that is going); without one, or past
        HANDOVER_SECONDS, the lease is let go."""
        if self.lease is None:
            return
        seen = self.observe()  # now: the last loop's view may be from before a promotion
        followers = {p.name: p.holds for p in seen.peers if p.answers and p.following == self.me}
        if not seen.me.writable or not followers:
            return
        self.switchover_to = most_advanced(followers)[0]
        deadline = time.monotonic() + HANDOVER_SECONDS
        while time.monotonic() < deadline and self._holder() != self.switchover_to:
            self.step()
            time.sleep(LOOP_SECONDS / 2)
        log.info("stopping: the lease is %s's", self._holder())
        self.switchover_to = None
