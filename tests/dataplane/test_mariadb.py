"""MariaDB members on this host (real mariadbd, real agents, a real Lease): bootstrap, GTID
replication with semi-synchronous acknowledgement, and failovers that must lose no
acknowledged commit — the primary killed, frozen, and a replica deliberately behind."""

from __future__ import annotations

import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import pymysql
import pytest
from tests.support.kube import Cluster, wait_for
from tests.support.mariadb import LocalMariaDB, LocalMember, Writer

from kuberds.engines.mariadb import MARIADB
from kuberds.operations import agents

TABLE = "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)"


@pytest.fixture
def mariadb(request: pytest.FixtureRequest, cluster: Cluster, namespace: str, workroot: Path):
    servers: list[LocalMariaDB] = []

    def start(name: str = "shop", **kwargs) -> LocalMariaDB:
        # Short paths: a Unix socket path may not exceed 107 bytes.
        server = LocalMariaDB(cluster, namespace, name, Path(tempfile.mkdtemp(prefix="m", dir=workroot)), **kwargs)
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def ids(local: LocalMariaDB, member: LocalMember) -> set[int] | None:
    """The rows' ids on a member; None while it cannot say (the table not replicated yet)."""
    try:
        return {row[0] for row in local.query(member, "SELECT id FROM orders", database=local.database)}
    except (pymysql.Error, OSError):
        return None


def metrics(member: LocalMember) -> dict[str, float]:
    """The member's agent's metrics without labels, by name."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{member.metrics_port}/metrics", timeout=10).read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line and not line.startswith("#") and "{" not in line}  # fmt: skip


def lost(local: LocalMariaDB, member: LocalMember, writer: Writer) -> list[int]:
    present = ids(local, member)
    return [c.key for c in writer.acknowledged if c.key not in present]


def other_primary(local: LocalMariaDB, old: LocalMember, timeout: float = 60) -> LocalMember:
    return wait_for(lambda: (p := local.labelled_primary()) is not None and p is not old and p,
                    timeout=timeout, what=f"a primary other than {old.name}\n{local.logs()}")  # fmt: skip


def test_bootstrap_makes_the_master_user_and_replicates_from_the_first_transaction(mariadb) -> None:
    local = mariadb("boot")
    primary = local.primary()
    assert primary.name == "boot-0" and local.lease_holder() == "boot-0"
    local.query(primary, TABLE, database=local.database)
    local.query(primary, "INSERT INTO orders VALUES (1, 'first')", database=local.database)
    local.wait_replicas()
    replica = local.members[1]
    assert wait_for(lambda: ids(local, replica) == {1}, timeout=30, what="the row on the replica")
    # Replicas are read-only for the master user too.
    with pytest.raises(pymysql.err.OperationalError, match=r"read-only|READ.ONLY"):
        local.query(replica, "INSERT INTO orders VALUES (2, 'on a replica')", database=local.database)
    # Commits wait for the replica's acknowledgement (semi-sync, no fallback to asynchronous).
    with local.agent_connect(primary) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                       "('Rpl_semi_sync_master_clients', 'Rpl_semi_sync_master_status')")  # fmt: skip
        status = dict(cursor.fetchall())
    assert status == {"Rpl_semi_sync_master_clients": "1", "Rpl_semi_sync_master_status": "ON"}
    # And the metrics say so: the primary, its acknowledging replica, no commit without one.
    scraped = metrics(primary)
    assert scraped["kuberds_mariadb_up"] == 1 and scraped["kuberds_mariadb_primary"] == 1
    assert scraped["kuberds_mariadb_semi_sync_replicas"] == 1
    assert scraped["kuberds_mariadb_semi_sync_acknowledged_commits_total"] >= 2
    assert scraped["kuberds_mariadb_semi_sync_unacknowledged_commits_total"] == 0
    assert metrics(replica)["kuberds_mariadb_primary"] == 0
    # The replica's report says it confirms every commit: what a rollout waits for before it
    # switches over to it. And both report their volumes (for storage autoscaling).
    reports = {m.name: wait_for(lambda m=m, role=role: (r := local.report(m)).role == role and r, timeout=30,
                                what=f"{m.name}'s report as {role}")
               for m, role in ((primary, "primary"), (replica, "replica"))}  # fmt: skip
    assert wait_for(lambda: local.report(replica).synchronous_standby, timeout=30, what="synchronousStandby")
    assert reports[primary.name].synchronous_standby is None
    assert all(r.volume_bytes and 0 < r.volume_free_bytes <= r.volume_bytes for r in reports.values())


def fail_over_under_writes(local: LocalMariaDB, writer: Writer, old: LocalMember, fault) -> LocalMember:
    """Applies `fault` to the primary once commits flow; returns the new primary after it took
    100 commits. Prints the time to the first commit it acknowledged."""
    wait_for(lambda: len(writer.acknowledged) > 200, timeout=60, what="200 commits")
    at = time.monotonic()
    fault()
    new = other_primary(local, old)
    wait_for(lambda: len([c for c in writer.acknowledged if c.member == new.name]) > 100, timeout=60,
             what=f"100 commits through {new.name}\n{local.logs()}")  # fmt: skip
    print(f"\n{local.name}: first commit through the new primary {writer.first_commit_after(at, new.name):.2f} s "
          f"after the fault")  # fmt: skip
    return new


def test_killed_primary_fails_over_without_losing_an_acknowledged_commit(mariadb) -> None:
    # Three members: with the primary gone, one replica still acknowledges (with two, commits
    # wait for the killed member to come back as a replica: semi-sync never falls back).
    local = mariadb("kill", instances=3)
    primary = local.primary()
    local.query(primary, TABLE, database=local.database)
    local.wait_replicas()
    with Writer(local) as writer:
        new = fail_over_under_writes(local, writer, primary, lambda: local.kill(primary))
    assert lost(local, new, writer) == [], local.logs()
    print(f"kill -9: {len(writer.acknowledged)} acknowledged, 0 lost")
    # The old primary comes back (as the kubelet restarts it) as a replica of the new one.
    local.start(primary)
    local.wait_replicas()
    assert wait_for(lambda: ids(local, primary) == ids(local, new), timeout=60, what="the old primary caught up")


def test_frozen_primary_is_replaced_and_rejoins_when_thawed_without_its_tail(mariadb) -> None:
    local = mariadb("frozen", instances=3)
    primary = local.primary()
    local.query(primary, TABLE, database=local.database)
    local.wait_replicas()
    with Writer(local) as writer:
        new = fail_over_under_writes(local, writer, primary, lambda: local.signal(primary, signal.SIGSTOP))
        local.signal(primary, signal.SIGCONT)
        # Thawed, it finds the lease in another's name: whatever it wrote that no replica
        # acknowledged is discarded by its crash recovery, and it follows the new primary.
        wait_for(lambda: local.replica_status(primary).get("Master_Port") == new.port
                 and local.replica_status(primary).get("Slave_SQL_Running") == "Yes", timeout=90,
                 what=f"{primary.name} replicating from {new.name}\n{local.logs()}")  # fmt: skip
    assert lost(local, new, writer) == [], local.logs()
    assert wait_for(lambda: ids(local, primary) == ids(local, new), timeout=60, what="the old primary caught up")
    print(f"SIGSTOP: {len(writer.acknowledged)} acknowledged, 0 lost; {writer.errors} refused or timed out")


def test_the_replica_with_every_acknowledged_commit_wins_though_it_applied_least(mariadb) -> None:
    """The case users lose writes in: the replica that applied most is not the one that has
    most. Member 2's SQL thread is held back (a table lock) while it acknowledges every
    commit; member 1 is down meanwhile and comes back with fewer (a freeze would not do: the
    socket buffers hand a thawed replica what it missed). The primary dies: member 2 must be
    chosen, apply its relay log, and only then take writes; member 1 follows it."""
    local = mariadb("behind", instances=3)
    primary, one, two = local.members
    assert local.primary() is primary
    local.query(primary, TABLE, database=local.database)
    local.query(primary, "INSERT INTO orders VALUES (0, 'seed')", database=local.database)
    local.wait_replicas()
    wait_for(lambda: ids(local, one) == {0} and ids(local, two) == {0}, timeout=30, what="the seed row everywhere")
    lock = local.connect(two, database=local.database, timeout=120)
    with lock.cursor() as cursor:
        cursor.execute("LOCK TABLES orders READ")  # its SQL thread waits; its IO thread goes on
    local.kill(one)
    with Writer(local) as writer:
        wait_for(lambda: len(writer.acknowledged) > 300, timeout=60, what="300 commits acknowledged by member 2")
    local.kill(primary)
    local.start(one)
    time.sleep(8)  # past the lease: nobody may take writes while member 2's relay log waits
    chosen = local.labelled_primary()
    assert chosen in (None, primary), f"{chosen.name} was chosen before the relay log was applied\n{local.logs()}"
    assert ids(local, two) == {0}, "member 2 applied while its table was locked"
    lock.close()
    new = other_primary(local, primary)
    assert new is two, f"{new.name} was chosen, not the member that had every acknowledged commit"
    assert lost(local, two, writer) == [], local.logs()
    assert wait_for(lambda: ids(local, one) == ids(local, two), timeout=60, what="member 1 caught up from member 2")
    print(f"behind: {len(writer.acknowledged)} acknowledged, 0 lost; member 2 chosen after applying its relay log")


def test_a_switchover_hands_the_lease_over_once_the_candidate_has_every_commit(mariadb) -> None:
    local = mariadb("switch")
    primary, standby = local.members
    assert local.primary() is primary
    local.query(primary, TABLE, database=local.database)
    local.wait_replicas()
    request = MARIADB.switchover(primary.name, standby.name)
    with pytest.raises(agents.AgentError, match="401"):
        local.ask(primary, request, password="wrong")
    with pytest.raises(agents.AgentError, match="409"):
        local.ask(standby, request)  # only the primary hands over
    with Writer(local) as writer:
        wait_for(lambda: len(writer.acknowledged) > 200, timeout=60, what="200 commits")
        asked = time.monotonic()
        answer = local.ask(primary, request)
        took = time.monotonic() - asked
        assert "switched over" in answer and local.lease_holder() == standby.name
        wait_for(lambda: len([c for c in writer.acknowledged if c.member == standby.name]) > 100, timeout=60,
                 what=f"100 commits through {standby.name}\n{local.logs()}")  # fmt: skip
    assert lost(local, standby, writer) == [], local.logs()
    local.wait_replicas()
    assert local.replica_status(primary).get("Master_Port") == standby.port
    print(
        f"\nswitchover: answered in {took:.2f} s; first commit through {standby.name} "
        f"{writer.first_commit_after(asked, standby.name):.2f} s after the request; 0 of "
        f"{len(writer.acknowledged)} lost"
    )


def test_a_primary_stopped_cleanly_hands_over_at_once(mariadb) -> None:
    # A pod deleted or rolled: SIGTERM to the agent, which switches over before it stops.
    local = mariadb("clean")
    primary, standby = local.members
    assert local.primary() is primary
    local.query(primary, TABLE, database=local.database)
    local.wait_replicas()

    def stop_and_come_back() -> None:
        # The kubelet starts the pod again; until it is back as a replica, commits wait for it
        # (two members, semi-sync that never falls back).
        primary.process.send_signal(signal.SIGTERM)
        assert primary.process.wait(timeout=60) == 0
        local.start(primary)

    with Writer(local) as writer:
        new = fail_over_under_writes(local, writer, primary, stop_and_come_back)
        assert new is standby
    assert lost(local, standby, writer) == [], local.logs()
    print(f"clean stop: {len(writer.acknowledged)} acknowledged, 0 lost")


def refused(local: LocalMariaDB, member: LocalMember, statement: str) -> str:
    try:
        local.query(member, statement, database=local.database)
    except pymysql.err.MySQLError as error:
        return str(error)
    raise AssertionError(f"the master user was allowed: {statement}")


def test_the_master_user_owns_its_databases_and_has_no_way_out_of_them(mariadb) -> None:
    local = mariadb("owner", instances=1, synchronous=False)
    primary = local.primary()
    # What an owner does: databases, tables, users with grants of its own.
    for statement in ("CREATE DATABASE billing", "CREATE TABLE billing.invoices (id INT PRIMARY KEY)",
                      "CREATE USER app IDENTIFIED BY 'app-secret-1'", "GRANT SELECT, INSERT ON billing.* TO app",
                      "INSERT INTO billing.invoices VALUES (1)"):  # fmt: skip
        local.query(primary, statement)
    assert local.query(primary, "SELECT id FROM billing.invoices", user="app", password="app-secret-1") == [(1,)]
    # What would take it out of them: the system schema, the server's files and settings,
    # the binlogs the replicas and backups need, replication, the server's life.
    for statement in ("SELECT * FROM mysql.global_priv", "UPDATE mysql.global_priv SET Priv = '{}'",
                      "CREATE TABLE mysql.mine (id INT)", "SET GLOBAL read_only = ON",
                      "SELECT 1 INTO OUTFILE '/tmp/kuberds-escape'",
                      "RESET MASTER", "PURGE BINARY LOGS BEFORE NOW()", "STOP SLAVE", "SHUTDOWN",
                      "GRANT SUPER ON *.* TO app", "GRANT ALL ON mysql.* TO app", "SET GLOBAL sync_binlog = 0",
                      "INSTALL SONAME 'ha_connect'"):  # fmt: skip
        message = refused(local, primary, statement)
        assert "denied" in message or "privilege" in message, f"{statement}: {message}"
    assert local.query(primary, "SELECT LOAD_FILE('/etc/passwd')") == [(None,)], "a file read without FILE"
