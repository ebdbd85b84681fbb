"""MariaDB GTID positions: parse, render, compare. Pure.

A MariaDB GTID is `domain-server_id-seq_no`. A position (@@gtid_current_pos, @@gtid_binlog_pos,
@@gtid_slave_pos, SHOW SLAVE STATUS's Gtid_IO_Pos) keeps the last GTID of each replication
domain, at most one per domain: "0-1-100,1-2-5", or "" when nothing was ever replicated or
written. Within a domain seq_no only grows, so one position contains another when, domain by
domain, its seq_no is at least as far.

What a position cannot say is who wrote the transactions before the last one of a domain. So:

- the same seq_no written by two servers is two different transactions: neither position
  covers the other (a split brain shows up exactly like this);
- a tail beyond the primary is named by its range, with the server_id of its last GTID.

Errant transactions (a member has them, the primary does not) are reported, never merged:
keeping them silently is how users of GTID replication lose or fork data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_GTID = re.compile(r"([0-9]+)-([0-9]+)-([0-9]+)")
_LIMITS = (("domain", 2**32), ("server_id", 2**32), ("seq_no", 2**64))  # MariaDB's unsigned widths


@dataclass(frozen=True)
class Gtid:
    domain: int
    server_id: int
    seq: int

    @classmethod
    def parse(cls, piece: str) -> Gtid:
        match = _GTID.fullmatch(piece.strip())
        if not match:
            raise ValueError(f"not a GTID: {piece.strip()!r} (expected domain-server_id-seq_no)")
        numbers = [int(n) for n in match.groups()]
        for (what, limit), number in zip(_LIMITS, numbers, strict=True):
            if number >= limit:
                raise ValueError(f"not a GTID: {piece.strip()!r} ({what} out of range)")
        return cls(*numbers)

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"


@dataclass(frozen=True, repr=False)
class GtidPos:
    """A GTID position: the last GTID of each domain, keyed by domain."""

    domains: Mapping[int, Gtid] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for domain, gtid in self.domains.items():
            if gtid.domain != domain:
                raise ValueError(f"GTID {gtid} filed under domain {domain}")
        # A read-only copy: a position is a value, shared between snapshots.
        object.__setattr__(self, "domains", MappingProxyType(dict(sorted(self.domains.items()))))

    @classmethod
    def of(cls, gtids: Iterable[Gtid]) -> GtidPos:
        domains: dict[int, Gtid] = {}
        for gtid in gtids:
            if gtid.domain in domains:
                raise ValueError(f"two GTIDs for domain {gtid.domain}: {domains[gtid.domain]} and {gtid}")
            domains[gtid.domain] = gtid
        return cls(domains)

    @classmethod
    def parse(cls, text: str | None) -> GtidPos:
        """Parse a position as MariaDB shows it; long values come wrapped over lines ("…,\\n…")."""
        if text is None or not text.strip():
            return cls()
        return cls.of(Gtid.parse(piece) for piece in text.split(","))

    def seq(self, domain: int) -> int:
        """The last seq_no of a domain; 0 when this position has none in it."""
        gtid = self.domains.get(domain)
        return gtid.seq if gtid else 0

    @property
    def is_empty(self) -> bool:
        return not self.domains

    @property
    def total(self) -> int:
        """Every domain's seq_no summed: how far a position is when no other order holds."""
        return sum(g.seq for g in self.domains.values())

    def furthest(self, other: GtidPos) -> GtidPos:
        """Per domain, the further of the two (this one's on a tie): what a member holds in its
        binlog and its relay log together."""
        merged = dict(self.domains)
        for domain, gtid in other.domains.items():
            if gtid.seq > self.seq(domain):
                merged[domain] = gtid
        return GtidPos(merged)

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.domains.values())

    def __repr__(self) -> str:
        return f"GtidPos({str(self)!r})"

    def __hash__(self) -> int:
        return hash(tuple(self.domains.values()))


EMPTY = GtidPos()


def covers(a: GtidPos, b: GtidPos) -> bool:
    """a contains everything b has: in every domain of b, a is at least as far, and at b's very
    seq_no a has the same GTID (another server's GTID there is another transaction)."""
    for domain, theirs in b.domains.items():
        ours = a.domains.get(domain)
        if ours is None or ours.seq < theirs.seq:
            return False
        if ours.seq == theirs.seq and ours.server_id != theirs.server_id:
            return False
    return True


def ahead(a: GtidPos, b: GtidPos) -> int:
    """How many transactions a has that b lacks, summed over domains (0 when none)."""
    return sum(max(0, gtid.seq - b.seq(domain)) for domain, gtid in a.domains.items())


def _natural(name: str) -> tuple[str | int, ...]:
    # "db-2" before "db-10": StatefulSet members sort by ordinal.
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"([0-9]+)", name)))


def most_advanced(positions: Mapping[str, GtidPos]) -> list[str]:
    """Names best first: one that covers every other position first (the lower name on a tie).
    When positions diverged no order is right; the ones covering most others, then the larger
    total, come first, and `diverged` says so."""

    def rank(name: str) -> tuple:
        pos = positions[name]
        covered = sum(covers(pos, other) for n, other in positions.items() if n != name)
        return (-covered, -pos.total, _natural(name))

    return sorted(positions, key=rank)


def diverged(positions: Mapping[str, GtidPos]) -> bool:
    """No single position covers all the others: some member has transactions another lacks and
    the other way round, and none of them may be picked without losing some."""
    values = list(positions.values())
    return bool(values) and not any(all(covers(p, q) for q in values) for p in values)


def errant(replica: GtidPos, primary: GtidPos, primary_server_ids: set[int] | None = None) -> list[str]:
    """The transactions the replica has and the primary lacks, one readable entry per domain.

    `primary_server_ids`, when known, are the servers that wrote the primary's history: a
    replica's last GTID behind the primary but from another server was written on the side.
    The primary's position must be read after the replica's, so a replica is never found
    ahead of a primary that merely moved on between the two reads.
    """
    found = []
    for domain, gtid in replica.domains.items():
        theirs = primary.domains.get(domain)
        if theirs is None:
            found.append(f"{gtid} (domain {domain} is not on the primary)")
        elif gtid.seq > theirs.seq:
            found.append(_tail(gtid, theirs.seq))
        elif gtid.seq == theirs.seq and gtid.server_id != theirs.server_id:
            found.append(f"{gtid} (the primary has {theirs} at that seq_no)")
        elif primary_server_ids is not None and gtid.server_id not in primary_server_ids:
            found.append(f"{gtid} (server {gtid.server_id} never wrote the primary's history)")
    return found


def _tail(last: Gtid, primary_seq: int) -> str:
    count = last.seq - primary_seq
    if count == 1:
        return str(last)
    # A position keeps only the last GTID: the first one's server_id is assumed the same.
    first = Gtid(last.domain, last.server_id, primary_seq + 1)
    return f"{first}..{last} ({count} transactions)"
