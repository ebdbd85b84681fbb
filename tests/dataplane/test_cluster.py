"""A DBCluster's shape on real PostgreSQL + Patroni (three members, strict synchronous
commit), with the API server as DCS: no acknowledged commit is lost when the writer dies,
writes go on when a reader dies, and every reader reports its lag (what the reader endpoint
judges by)."""

from __future__ import annotations

import os
import signal
import time

from tests.support.kube import wait_for


def roles(server) -> dict[str, str]:
    view = server.members[0].patroni("/cluster") or server.members[-1].patroni("/cluster") or {}
    return {m["name"]: m["role"] for m in view.get("members", [])}


def test_three_members_lose_no_acknowledged_commit_when_the_writer_dies(servers) -> None:
    server = servers("quorum", None, members=3)
    old = server.primary()
    server.wait_streaming()
    with server.connect() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    assert sorted(roles(server).values()) == ["leader", "replica", "sync_standby"]
    # Every reader reports how far behind it is (0 while streaming and caught up).
    for member in server.members:
        if member is not old:
            wait_for(lambda m=member: server.agent_status(m).get("replicaLagSeconds") is not None, timeout=30,
                     what=f"{member.name} reporting its lag")  # fmt: skip

    writer = server.writer().start()
    try:
        wait_for(lambda: len(writer.acknowledged) > 200, timeout=30, what="200 acknowledged writes")
        disrupted = time.monotonic()
        os.kill(old.postmaster_pid(), signal.SIGKILL)
        new = wait_for(lambda: next((m for m in server.members if m is not old and m.role() == "master"), None),
                       timeout=60, interval=0.2, what=f"a reader promoted\n{server.logs()}")  # fmt: skip
        seconds = wait_for(lambda: writer.recovered_after(disrupted), timeout=30, what="writes again")
        wait_for(lambda: len(writer.acknowledged) > 400, timeout=30, what="more writes on the new writer")
    finally:
        writer.stop()
    assert writer.missing() == [], "acknowledged commits lost"
    print(f"\n3 members, writer killed: {new.name} writes after {seconds:.1f}s; {len(writer.acknowledged)} "
          "acknowledged, 0 lost")  # fmt: skip
    wait_for(lambda: old.role() == "replica", timeout=120, interval=1, what=f"the old writer rejoins\n{server.logs()}")


def test_three_members_keep_writing_when_a_reader_dies(servers) -> None:
    """Strict synchronous commit waits for a reader; with one reader gone the other confirms."""
    server = servers("oneleft", None, members=3)
    primary = server.primary()
    server.wait_streaming()
    sync = next(m for m in server.members if roles(server).get(m.name) == "sync_standby")
    writer = server.writer().start()
    try:
        wait_for(lambda: len(writer.acknowledged) > 100, timeout=30, what="100 acknowledged writes")
        stopped = time.monotonic()
        server.stop(sync, hard=True)
        acked = wait_for(lambda: writer.first_ack_after(stopped + 1), timeout=60,
                         what=f"writes confirmed by the other reader\n{server.logs()}")  # fmt: skip
        seconds = acked - stopped
        other = next(m for m in server.members if m not in (primary, sync))
        wait_for(lambda: roles(server).get(other.name) == "sync_standby", timeout=60, what="a new sync standby")
    finally:
        writer.stop()
    assert writer.missing() == []
    print(f"\n3 members, synchronous reader stopped: writes confirmed again after {seconds:.1f}s")
