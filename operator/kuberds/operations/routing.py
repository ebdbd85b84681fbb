"""Keeps each routed endpoint's EndpointSlice as the leader lease and the members say
(builders.routing decides). Runs on every refresh of a server: its members' pod events and
every change of its leader object. Writes a slice only when it differs from the one last
written, or that was written a while ago (so a slice edited or deleted by hand comes back).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from kuberds.builders.routing import endpoint_slices, leader_of
from kuberds.builders.server import Server
from kuberds.builders.status import Member
from kuberds.kube import Kube

__all__ = ["Routed", "due", "forget", "leader_of", "route"]

# A slice is written again after this long even when nothing changed (drift); the leader
# object is renewed every few seconds, so its events bring the refresh that does it.
REWRITE_SECONDS = 60.0

_lock = threading.Lock()
_written: dict[tuple[tuple[str, str, str], str], tuple[dict, float]] = {}  # (server key, slice) → (it, when)
_leaders: dict[tuple[str, str, str], tuple[str | None, float]] = {}  # server key → (lease holder, when routed)
_holders: dict[tuple[str, str, str], str] = {}  # server key → the last member seen holding the lease


@dataclass(frozen=True)
class Routed:
    """What one routing step did."""

    leader: str | None  # the lease holder now
    previous: str | None  # the holder the last step saw (None: none, or the first step)
    changed: bool  # the holder differs from the one the last step saw
    # The last member seen holding the lease before this one (a handover passes through
    # "nobody" when the old holder releases it first): a failover is a new holder after it.
    last_holder: str | None = None
    written: tuple[str, ...] = ()  # the slices written

    def describe(self) -> str:
        moved = f"writer endpoint {self.previous or 'nobody'} → {self.leader or 'nobody'}; " if self.changed else ""
        return moved + (f"wrote {', '.join(self.written)}" if self.written else "endpoints as they were")


def due(key: tuple[str, str, str], leader_object: dict | None) -> bool:
    """Whether an event of the leader object needs a refresh: the holder changed, or the
    slices were last written a while ago."""
    holder, at = _leaders.get(key, (None, None))
    return at is None or holder != leader_of(leader_object) or time.monotonic() - at > REWRITE_SECONDS


def route(kube: Kube, key: tuple[str, str, str], server: Server, members: list[Member],
          leader_object: dict | None) -> Routed:  # fmt: skip
    """Write the slices that changed; `key` is (kind, namespace, name) of the server."""
    leader, now, written = leader_of(leader_object), time.monotonic(), []
    for _route, slice_ in endpoint_slices(server, members, leader):
        slice_key = (key, slice_["metadata"]["name"])
        with _lock:
            last, at = _written.get(slice_key, (None, 0.0))
        if last == slice_ and now - at < REWRITE_SECONDS:
            continue
        kube.apply(slice_)
        with _lock:
            _written[slice_key] = (slice_, now)
        written.append(slice_["metadata"]["name"])
    with _lock:
        previous, _ = _leaders.get(key, (None, None))
        first = key not in _leaders
        _leaders[key] = (leader, now)
        last_holder = _holders.get(key)
        if leader:
            _holders[key] = leader
    return Routed(leader, previous, not first and previous != leader, last_holder, tuple(written))


def forget(key: tuple[str, str, str]) -> None:
    """The server is gone (its slices go with it by their owner reference): forget it here."""
    with _lock:
        _leaders.pop(key, None)
        _holders.pop(key, None)
        for slice_key in [k for k in _written if k[0] == key]:
            _written.pop(slice_key, None)
