"""The pooling proxy on real PgBouncer in front of real PostgreSQL + Patroni: logins without a
copy of any password, and clients held through a switchover the operator makes."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from tests.support.clients import Clients
from tests.support.dataplane import LocalServer
from tests.support.kube import wait_for
from tests.support.proxy import LocalProxy

from kuberds.operations import proxy as hold


@pytest.fixture
def proxied(servers, workroot: Path):
    """A Multi-AZ server with its standby streaming, its accounts set, and a proxy in front."""
    started: list[LocalProxy] = []

    def start(name: str, **pool: object) -> tuple[LocalServer, LocalProxy]:
        server = servers(name, None, spec={"proxy": {"enabled": True}})
        primary = server.primary()
        server.wait_streaming()
        wait_for(lambda: server.agent_status(primary).get("accountsReady") is True, timeout=60,
                 what="the primary's accounts set")  # fmt: skip
        local = LocalProxy(server, Path(tempfile.mkdtemp(prefix="p", dir=workroot)), **pool)
        started.append(local.__enter__())
        with server.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
            conn.commit()
        return server, local

    yield start
    for local in started:
        local.__exit__(None, None, None)


def test_clients_log_in_through_the_proxy_by_a_lookup_not_a_copy_of_passwords(proxied) -> None:
    server, local = proxied("pxauth")
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT kuberds.create_role('reporting', 'report-pass')")
        conn.execute("CREATE DATABASE reports")  # from template1: the lookup comes with it
    with local.connect() as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("app", "app")
    with local.connect("reporting", "report-pass") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "reporting"
    with local.connect("reporting", "report-pass", dbname="reports") as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "reports"
    with pytest.raises(psycopg.OperationalError, match=r"password authentication failed|SASL authentication failed"):
        local.connect("reporting", "wrong").close()
    # kuberds' own logins are not found by the lookup: nobody reaches them through the proxy,
    # whatever password they try (the proxy's own included).
    for user, password in (("postgres", server.superuser_password), ("kuberds_proxy", server.proxy_password),
                           ("replicator", server.superuser_password + "-r"), ("rewind", "x")):  # fmt: skip
        with pytest.raises(psycopg.OperationalError):
            local.connect(user, password).close()
    # The lookup is the proxy login's alone.
    with server.connect() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM kuberds.proxy_lookup('app')")
    with psycopg.connect(host="127.0.0.1", port=server.primary().pg_port, user="kuberds_proxy",
                         password=server.proxy_password, dbname="app") as conn:  # fmt: skip
        assert conn.execute("SELECT usename FROM kuberds.proxy_lookup('app')").fetchall() == [("app",)]
        assert conn.execute("SELECT usename FROM kuberds.proxy_lookup('postgres')").fetchall() == []
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM writes")
    # Clients are told TLS is there; the pool and its figures are visible.
    with local.connect(sslmode="require") as conn:
        assert conn.info.pgconn.ssl_in_use
    pools = [p for p in local.show("POOLS") if p["database"] == "app"]
    assert pools and pools[0]["pool_mode"] == "transaction"
    metrics = local.metrics()
    assert "kuberds_proxy_up 1.0" in metrics
    assert 'kuberds_proxy_transactions_total{database="app"}' in metrics


def test_a_switchover_under_100_clients_through_the_proxy_has_no_client_error(proxied) -> None:
    server, local = proxied("pxswitch")
    clients = Clients(lambda: local.connect(autocommit=True), 100).start()
    try:
        wait_for(lambda: len(clients.acknowledged) > 2000, timeout=60, what="2000 acknowledged writes")
        old = server.primary()
        new = next(m for m in server.members if m is not old)
        began = time.monotonic()
        held = hold.held_switchover([local.console()], lambda: server.switchover(old, new),
                                    lambda: (local.point_at(new), True)[1])  # fmt: skip
        after = len(clients.acknowledged)
        wait_for(lambda: len(clients.acknowledged) > after + 2000, timeout=60,
                 what=f"writes after the switchover ({held.summary()}; errors {clients.errors[:3]})\n"
                 f"{local.log_tail()}\n{local.show('POOLS')}")  # fmt: skip
    finally:
        clients.stop()
    assert server.primary() is new
    assert held.clean, held.summary()
    assert held.paused == ["local-proxy"]
    assert clients.errors == [], clients.errors[:5]
    with server.connect(new) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM writes")}
    assert not [i for i in clients.acknowledged if i not in present], "acknowledged rows lost"
    stall = clients.longest_stall(began)
    print(
        f"\nswitchover through the proxy, 100 clients: {held.summary()}; longest stall {stall:.2f}s; "
        f"{len(clients.acknowledged)} acknowledged, 0 errors"
    )


def test_a_killed_primary_costs_proxy_clients_a_bounded_burst_of_errors_and_no_commit(proxied) -> None:
    server, local = proxied("pxkill")
    local.follow()  # the writer Service follows the new primary's label
    clients = Clients(lambda: local.connect(autocommit=True), 50).start()
    try:
        wait_for(lambda: len(clients.acknowledged) > 1000, timeout=60, what="1000 acknowledged writes")
        old = server.primary()
        killed = time.monotonic()
        os.kill(old.postmaster_pid(), signal.SIGKILL)
        new = wait_for(lambda: next((m for m in server.members if m is not old and m.role() == "master"), None),
                       timeout=60, interval=0.2, what=f"a standby promoted\n{server.logs()}")  # fmt: skip
        promoted = time.monotonic()
        wait_for(lambda: any(sent > killed + 1 for sent, _ in clients.ack_times), timeout=60,
                 what=f"writes through the proxy again\n{local.log_tail()}")  # fmt: skip
        recovered = min(acked for sent, acked in clients.ack_times if sent > killed + 1)
        time.sleep(3)  # clients that met a failed login are told to wait server_login_retry (1 s)
        calm = time.monotonic()
        after = len(clients.acknowledged)
        wait_for(lambda: len(clients.acknowledged) > after + 1000, timeout=60, what="1000 more writes")
    finally:
        clients.stop()
    failed = clients.errors_after(killed)
    moves = [(f"{at - killed:.1f}s", name) for at, name in local.moves]
    assert clients.errors_after(calm) == [], (clients.errors_after(calm)[:3], f"calm {calm - killed:.1f}s", moves)
    with server.connect(new) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM writes")}
    assert not [i for i in clients.acknowledged if i not in present], "acknowledged rows lost"
    last_error = max((t for t, _ in failed), default=killed)
    reasons = sorted({message for _, message in failed})
    # Errors end within moments of the promotion (seen here by polling every 0.2 s; the proxy
    # is pointed by a poller of its own, then retries a failed login after server_login_retry).
    assert last_error - promoted < 3, f"errors went on {last_error - promoted:.1f}s after the promotion"
    print(f"\nkill -9 of the primary through the proxy (50 clients): standby promoted after {promoted - killed:.1f}s, "
          f"writes again after {recovered - killed:.1f}s; {len(failed)} errors, the last {last_error - killed:.1f}s "
          f"after the kill; 0 acknowledged rows lost; errors: {reasons[:3]}")  # fmt: skip


def test_a_pause_that_cannot_complete_is_given_up_and_the_proxy_resumed(proxied) -> None:
    """A transaction that stays open keeps PAUSE waiting: after the bound the switchover goes on,
    the proxy is resumed, and the outcome says so."""
    server, local = proxied("pxlong")
    old = server.primary()
    new = next(m for m in server.members if m is not old)
    long = local.connect()  # a transaction left open holds its server connection
    long.execute("SELECT 1")
    held = hold.held_switchover([local.console()], lambda: server.switchover(old, new),
                                lambda: (local.point_at(new), True)[1], pause_timeout=2)  # fmt: skip
    long.close()
    assert not held.clean and "PAUSE on local-proxy did not finish within 2s" in held.summary()
    assert "switched over without every pause" in held.summary()
    assert held.paused == [], "a pause that did not finish is not counted as held"
    assert server.primary() is new
    assert all(d["paused"] == 0 for d in local.show("DATABASES")), "the proxy was resumed"
    with local.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO writes (id) VALUES (-1)")
