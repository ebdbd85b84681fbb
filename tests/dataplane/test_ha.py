"""Multi-AZ high availability on real PostgreSQL + Patroni, with the API server as DCS."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import kubernetes
import psycopg
from tests.support.dataplane import LocalServer
from tests.support.kube import wait_for
from tests.support.writer import Writer


def streaming_under_writes(servers, name: str) -> tuple[LocalServer, Writer]:
    """A Multi-AZ server with its standby streaming, and a writer inserting into it."""
    server = servers(name, None)
    server.primary()
    server.wait_streaming()
    return server, server.writer().start()


def wait_for_rows(writer: Writer, more_than: int) -> None:
    wait_for(lambda: len(writer.acknowledged) > more_than, timeout=30, what=f"{more_than} acknowledged writes")


def test_multi_az_bootstraps_with_a_synchronous_standby_and_role_labels(servers, cluster, namespace) -> None:
    server = servers("ha", None)
    primary = server.primary()
    server.wait_streaming()
    standby = next(m for m in server.members if m is not primary)
    cluster_view = primary.patroni("/cluster")
    roles = {m["name"]: m["role"] for m in cluster_view["members"]}
    assert roles == {primary.name: "leader", standby.name: "sync_standby"}
    # Patroni labels the pods, so the writer Service's selector follows the primary.
    core = kubernetes.client.CoreV1Api(cluster.client())
    labels = {p.metadata.name: p.metadata.labels.get("kuberds.io/role")
              for p in core.list_namespaced_pod(namespace).items}  # fmt: skip
    assert labels == {primary.name: "master", standby.name: "replica"}
    # The standby's agent says it is the synchronous one: the operator switches over only to it.
    wait_for(lambda: server.agent_status(standby).get("synchronousStandby") is True, timeout=30,
             what="the standby reporting synchronousStandby")  # fmt: skip
    assert server.agent_status(primary).get("synchronousStandby") is None
    # Only the primary's agent has set the accounts; the operator counts it ready from then on.
    assert server.agent_status(primary).get("accountsReady") is True
    assert server.agent_status(standby).get("accountsReady") is None  # a standby holds the primary's accounts
    # The agent created the master user (not a superuser) and its database.
    with server.connect() as conn:
        row = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'app'").fetchone()
        assert row == (False, True, False), "roles are managed through kuberds.create_role() and its siblings"
        assert conn.execute("SELECT current_database()").fetchone()[0] == "app"
        assert conn.execute("SHOW synchronous_standby_names").fetchone()[0] != ""


def _failover(server: LocalServer, writer: Writer, disrupt) -> tuple[float, str]:
    old = server.primary()
    before = len(writer.acknowledged)
    wait_for_rows(writer, before + 50)
    disrupted_at = time.monotonic()
    disrupt(old)
    new = wait_for(lambda: next((m for m in server.members if m is not old and m.role() == "master"), None),
                   timeout=60, interval=0.2, what=f"a standby promoted\n{server.logs()}")  # fmt: skip
    seconds = wait_for(lambda: writer.recovered_after(disrupted_at), timeout=30, what="writes succeeding again")
    return seconds, new.name


def test_killed_postmaster_fails_over_without_losing_an_acknowledged_commit(servers) -> None:
    server, writer = streaming_under_writes(servers, "kill")
    old = server.primary()
    try:
        seconds, new = _failover(server, writer, lambda m: os.kill(m.postmaster_pid(), signal.SIGKILL))
        wait_for_rows(writer, len(writer.acknowledged) + 50)
    finally:
        writer.stop()
    assert new != old.name
    assert writer.missing() == [], "acknowledged commits lost"
    print(f"\nkill -9 postmaster: writes again after {seconds:.1f}s; {len(writer.acknowledged)} acknowledged")
    # The old primary rejoins as a standby (pg_rewind if it diverged).
    wait_for(lambda: old.role() == "replica", timeout=120, interval=1, what=f"old primary rejoins\n{server.logs()}")
    server.wait_streaming()


def test_frozen_primary_fails_over_and_rejoins_when_thawed(servers) -> None:
    """SIGSTOP on every process of the member: a hung node. The lease expires, the standby
    takes over; thawed, the old primary finds it lost the lease and demotes itself."""
    server, writer = streaming_under_writes(servers, "freeze")
    old = server.primary()
    try:
        seconds, _ = _failover(server, writer, lambda m: server.signal_all(m, signal.SIGSTOP))
        wait_for_rows(writer, len(writer.acknowledged) + 50)
        server.signal_all(old, signal.SIGCONT)
        wait_for(
            lambda: old.role() == "replica", timeout=120, interval=1, what=f"thawed primary rejoins\n{server.logs()}"
        )
    finally:
        server.signal_all(old, signal.SIGCONT)
        writer.stop()
    assert writer.missing() == [], "acknowledged commits lost"
    print(f"\nSIGSTOP primary: writes again after {seconds:.1f}s")


def test_planned_switchover_loses_nothing(servers) -> None:
    server, writer = streaming_under_writes(servers, "switch")
    old = server.primary()
    standby = next(m for m in server.members if m is not old)
    try:
        wait_for_rows(writer, 50)
        started = time.monotonic()
        answer = server.switchover(old, standby)
        assert standby.name in answer, answer
        # The HA API refuses the same request without the server's credentials.
        refused = old.patroni("/switchover", "POST", {"leader": standby.name, "candidate": old.name})
        assert "auth" in (refused or {}).get("text", ""), refused
        wait_for(lambda: standby.role() == "master", timeout=60, interval=0.2, what=f"switchover\n{server.logs()}")
        wait_for(lambda: writer.first_ack_after(started), timeout=30, what="writes after switchover")
        wait_for_rows(writer, len(writer.acknowledged) + 50)
    finally:
        writer.stop()
    assert writer.missing() == []
    wait_for(lambda: old.role() == "replica", timeout=120, interval=1, what="old primary follows")


def test_parameters_reload_or_restart_through_patroni_and_metrics_report(servers) -> None:
    """A changed agent.json (the kubelet refreshes the mounted ConfigMap): work_mem applies
    by reload; shared_buffers needs a restart, standby first. Metrics say who is primary."""
    server = servers("params", None)
    server.primary()
    server.wait_streaming()
    for member in server.members:
        config = member.workdir / "config" / "agent.json"
        agent = json.loads(config.read_text())
        # max_connections is cluster-wide: Patroni takes it from its DCS only.
        agent["parameters"] |= {"work_mem": "24MB", "shared_buffers": "160MB", "max_connections": "150"}
        agent["ha"]["ttl"] = 8  # cluster-wide: the primary's agent updates Patroni's DCS config
        config.write_text(json.dumps(agent))

    def applied(member) -> bool:
        try:
            with server.superuser(member) as conn:
                shown = [conn.execute(f"SHOW {name}").fetchone()[0]
                         for name in ("work_mem", "shared_buffers", "max_connections")]  # fmt: skip
                return shown == ["24MB", "160MB", "150"]
        except psycopg.OperationalError:
            return False

    for member in server.members:
        wait_for(
            lambda m=member: applied(m), timeout=180, interval=2, what=f"parameters on {member.name}\n{server.logs()}"
        )
    primary = server.primary()
    wait_for(lambda: (primary.patroni("/config") or {}).get("ttl") == 8, timeout=60, what="Patroni's ttl updated")
    with urllib.request.urlopen(f"http://127.0.0.1:{primary.metrics_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "kuberds_postgres_primary 1.0" in metrics and "kuberds_postgres_replication_lag_bytes" in metrics


def test_the_instance_class_sizes_max_connections(servers) -> None:
    """max_connections follows the class (RDS: memory / 9531392), which Patroni applies only
    from its DCS: two classes, two values, on real servers."""
    small = servers("small", None, multi_az=False, spec={"instanceClass": "db.t3.micro"})
    large = servers("large", None, multi_az=False, spec={"instanceClass": "db.t3.medium"})
    shown = {}
    for name, server in (("small", small), ("large", large)):
        with server.superuser(server.primary()) as conn:
            shown[name] = conn.execute("SHOW max_connections").fetchone()[0]
    assert shown == {"small": "112", "large": "450"}
