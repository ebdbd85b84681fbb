"""MariaDB GTID positions: parsed as the server shows them, compared domain by domain, and
errant transactions named rather than merged."""

from __future__ import annotations

import pytest

from kuberds.agent.mariadb.gtid import EMPTY, Gtid, GtidPos, ahead, covers, diverged, errant, most_advanced


def pos(text: str) -> GtidPos:
    return GtidPos.parse(text)


def test_a_position_round_trips_sorted_by_domain() -> None:
    parsed = pos("1-2-5,0-1-100")
    assert str(parsed) == "0-1-100,1-2-5"
    assert parsed.domains[1] == Gtid(1, 2, 5)
    assert pos(str(parsed)) == parsed and hash(pos(str(parsed))) == hash(parsed)
    assert (parsed.seq(0), parsed.seq(1), parsed.seq(7)) == (100, 5, 0)
    assert not parsed.is_empty and parsed.total == 105
    assert repr(parsed) == "GtidPos('0-1-100,1-2-5')"


def test_empty_and_wrapped_values_as_mariadb_prints_them() -> None:
    assert GtidPos.parse("") == GtidPos.parse(None) == GtidPos.parse("  \n") == EMPTY
    assert EMPTY.is_empty and str(EMPTY) == ""
    # Long values come wrapped over lines in SHOW SLAVE STATUS and the CLI.
    assert str(pos(" 0-1-100,\n1-2-5 ,\n\t2-3-7\n")) == "0-1-100,1-2-5,2-3-7"


@pytest.mark.parametrize(
    ("text", "piece"),
    [("0-1-100,banana", "'banana'"), ("0-1", "'0-1'"), ("0-1-100,,1-2-5", "''"), ("0--1-5", "'0--1-5'"),
     ("0-1-1e3", "'0-1-1e3'"), ("0-1-18446744073709551616", "seq_no out of range"),
     ("4294967296-1-1", "domain out of range")],
)  # fmt: skip
def test_garbage_is_refused_naming_the_piece(text: str, piece: str) -> None:
    with pytest.raises(ValueError, match=piece.replace("(", r"\(")):
        GtidPos.parse(text)


def test_two_gtids_for_one_domain_are_not_a_position() -> None:
    # @@gtid_binlog_state lists one per server in a domain: not a position, refused.
    with pytest.raises(ValueError, match="two GTIDs for domain 0: 0-1-100 and 0-2-90"):
        GtidPos.parse("0-1-100,0-2-90")


def test_a_position_is_a_value() -> None:
    parsed = pos("0-1-100")
    with pytest.raises(TypeError):
        parsed.domains[0] = Gtid(0, 1, 1)  # type: ignore[index]
    with pytest.raises(ValueError, match="filed under domain 1"):
        GtidPos({1: Gtid(0, 1, 1)})


def test_covers_checks_every_domain_of_the_other() -> None:
    primary = pos("0-1-100,1-2-5")
    assert covers(primary, pos("0-1-90,1-2-5")) and covers(primary, EMPTY) and covers(primary, primary)
    assert not covers(primary, pos("0-1-101"))
    assert not covers(primary, pos("0-1-90,2-3-1"))  # a domain the primary never saw
    assert not covers(EMPTY, pos("0-1-1"))
    # The same seq_no from another server is another transaction (a split brain).
    assert not covers(pos("0-1-100"), pos("0-3-100"))
    assert covers(pos("0-2-101"), pos("0-3-100"))  # behind: positions cannot tell, history moved on


def test_ahead_counts_the_transactions_the_other_lacks() -> None:
    assert ahead(pos("0-1-105,1-2-5"), pos("0-1-100,1-2-7")) == 5
    assert ahead(pos("0-1-100,2-4-3"), pos("0-1-100")) == 3
    assert ahead(pos("0-1-100"), pos("0-1-100")) == ahead(EMPTY, pos("0-1-9")) == 0


def test_most_advanced_puts_the_one_that_covers_the_others_first() -> None:
    positions = {"db-1": pos("0-1-90,1-2-5"), "db-2": pos("0-1-100,1-2-5"), "db-0": pos("0-1-100,1-2-4")}
    assert most_advanced(positions) == ["db-2", "db-0", "db-1"] and not diverged(positions)
    # Equal positions: name order, by ordinal (db-2 before db-10).
    assert most_advanced({"db-10": pos("0-1-5"), "db-2": pos("0-1-5")}) == ["db-2", "db-10"]
    assert most_advanced({}) == [] and not diverged({})


def test_diverged_positions_are_said_to_be_diverged() -> None:
    # Each has a domain the other is behind in: neither may be picked without losing some.
    positions = {"db-0": pos("0-1-100,1-2-3"), "db-1": pos("0-1-90,1-2-20")}
    assert diverged(positions)
    assert most_advanced(positions) == ["db-1", "db-0"]  # the larger total first, but diverged
    assert diverged({"db-0": pos("0-1-100"), "db-1": pos("0-3-100")})  # same seq_no, two servers


def test_errant_names_the_tail_the_primary_lacks_in_every_domain() -> None:
    primary = pos("0-2-100,1-2-5")
    assert errant(pos("0-2-100,1-2-5"), primary) == [] and errant(pos("0-2-90"), primary) == []
    assert errant(pos("0-3-105,1-2-5"), primary) == ["0-3-101..0-3-105 (5 transactions)"]
    assert errant(pos("0-3-101,1-2-6"), primary) == ["0-3-101", "1-2-6"]
    assert errant(pos("0-2-100,7-3-2"), primary) == ["7-3-2 (domain 7 is not on the primary)"]
    assert errant(pos("0-3-100"), primary) == ["0-3-100 (the primary has 0-2-100 at that seq_no)"]


def test_errant_flags_a_replicas_own_writes_by_server_id_when_known() -> None:
    primary = pos("0-2-100")
    assert errant(pos("0-3-50"), primary) == []  # without the primary's servers it cannot tell
    assert errant(pos("0-3-50"), primary, {1, 2}) == ["0-3-50 (server 3 never wrote the primary's history)"]
    assert errant(pos("0-1-50"), primary, {1, 2}) == []
