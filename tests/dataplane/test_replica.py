"""A read replica on real processes: seeded from its source's backup, streaming, its lag
honest when the source is idle, busy or gone, and promoted under load into a standalone
server with its own backups."""

from __future__ import annotations

import time

from tests.dataplane.test_backup import first_backup_done
from tests.support.dataplane import LocalServer
from tests.support.kube import wait_for

from kuberds.agent.postgres.patroni import SEED_METHOD
from kuberds.contract.settings import RestorePlan, StandbySource
from kuberds.engines.postgres import POSTGRES
from kuberds.operations import agents


def replica_of(servers, s3, source: LocalServer, name: str) -> LocalServer:
    """What the operator hands a replica of `source`: the source's endpoint (verified by name
    with its CA), its repository to seed from, its credentials."""
    primary = source.primary()
    standby = StandbySource(host="localhost", port=primary.pg_port, ssl_mode="verify-full",
                            ca_bundle=(source.tls_dir / "ca.crt").read_text(), seed_from_backup=True)  # fmt: skip
    plan = RestorePlan(repository=source.backup.repository)
    return servers(name, s3, multi_az=False, standby=standby, restore=plan, restore_cipher=source.cipher_pass,
                   credentials_of=source)  # fmt: skip


def report(server: LocalServer) -> dict:
    return server.agent_status(server.leader())


def lag_when(server: LocalServer, check, what: str, timeout: float = 60) -> float:
    def seen() -> tuple[float] | None:  # a tuple: a lag of 0 is what is waited for, and falsy
        lag = report(server).get("replicaLagSeconds")
        return (lag,) if lag is not None and check(lag) else None

    return wait_for(seen, timeout=timeout, interval=0.5, what=f"{what}\n{server.logs()}")[0]


def test_replica_seeds_from_backup_reports_honest_lag_and_promotes_under_load(servers, s3) -> None:
    source = servers("rr-src", s3, multi_az=False)
    first_backup_done(source)
    with source.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE before_seed AS SELECT g AS id FROM generate_series(1, 1000) g")

    replica = replica_of(servers, s3, source, "rr-rep")
    leader = replica.leader(timeout=240)
    wait_for(lambda: report(replica).get("streaming") is True, timeout=120, interval=1,
             what=f"the replica streaming from its source\n{replica.logs()}")  # fmt: skip
    assert f"replica has been created using {SEED_METHOD}" in leader.log_tail(400), (
        "seeded from the source's backup, not by a copy from the source"
    )
    with replica.connect(leader) as conn:
        assert conn.execute("SELECT count(*) FROM before_seed").fetchone()[0] == 1000
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], "a replica is read-only"

    # Idle source: its agent's heartbeat keeps the replica's lag at 0, not growing with idleness.
    time.sleep(12)
    idle = [report(replica).get("replicaLagSeconds") for _ in range(3) if time.sleep(1) is None]
    assert all(lag is not None and lag <= 1.0 for lag in idle), f"idle source, lag {idle}"

    # Busy source: rows show up on the replica within the reported lag.
    writer = source.writer().start()
    try:
        time.sleep(5)
        busy = report(replica).get("replicaLagSeconds")
        assert busy is not None and busy < 5, f"busy source, lag {busy}"
        # Promote under load: every row acknowledged before the replica was last seen caught up is there.
        acknowledged = list(writer.acknowledged)
        lag_when(replica, lambda lag: lag == 0, "the replica caught up")
        tls = agents.AgentTls(leader.api_ca.read_text(), "localhost") if leader.api_ca else None
        agents.send("127.0.0.1", leader.api_port, POSTGRES.promote_replica(), replica.api_password, tls=tls)
        promoted = replica.primary(timeout=60)
    finally:
        writer.stop()
    with replica.connect(promoted, autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM writes")}
        missing = [i for i in acknowledged if i not in present]
        assert not missing, f"{len(missing)} rows acknowledged on the source before the catch-up are missing"
        conn.execute("INSERT INTO writes (id) VALUES (-1)")  # writable now
    wait_for(lambda: replica.agent_status(promoted).get("accountsReady") is True, timeout=60,
             what=f"the promoted replica's agent ready\n{replica.logs()}")  # fmt: skip
    # Its own repository, and a first full backup in it; the source is untouched.
    first_backup_done(replica)
    assert replica.backup.repository.path != source.backup.repository.path
    with source.connect() as conn:
        assert conn.execute("SELECT count(*) FROM writes WHERE id = -1").fetchone()[0] == 0
    assert source.primary() is not None


def test_lag_grows_honestly_when_the_source_is_gone(servers, s3) -> None:
    source = servers("rr-gone", s3, multi_az=False)
    first_backup_done(source)
    replica = replica_of(servers, s3, source, "rr-gone-rep")
    replica.leader(timeout=240)
    lag_when(replica, lambda lag: lag == 0, "the replica caught up", timeout=120)
    source.stop(source.primary(), hard=True)
    grown = lag_when(replica, lambda lag: lag >= 8, "the lag growing once the source is gone", timeout=60)
    assert report(replica).get("streaming") is False, "not streaming from a source that is gone"
    with replica.connect(replica.leader()) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1, "it keeps serving reads"
    assert grown >= 8
