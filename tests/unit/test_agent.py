"""The agent's pure parts: decisions, backup schedule and retention, generated configuration."""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kuberds.agent.decisions import Backoff, Observation, SnapshotRequest, next_steps
from kuberds.agent.pod import Pod
from kuberds.agent.postgres import patroni, pgbackrest
from kuberds.agent.schedule import (
    Archiving,
    Backups,
    Window,
    archive_health,
    automated_backup,
)
from kuberds.contract.environment import Credentials
from kuberds.contract.layouts import POSTGRES
from kuberds.contract.settings import (
    AgentConfig,
    BackupPlan,
    ClientTls,
    HaTiming,
    ObjectStoreTarget,
    Repository,
    RestorePlan,
    StandbySource,
)

NOW = datetime(2026, 11, 27, 3, 10, tzinfo=UTC)
REPO = Repository(ObjectStoreTarget("backups", "https://s3.local:8443", verify_tls=False), "/kuberds/ns/db/u1", "db")


def reasons(o: Observation) -> list[str]:
    return [s.reason for s in next_steps(o)]


def primary(**kw) -> Observation:
    base = dict(now=NOW, role="primary", state="running", backups_configured=True, repository_ready=True,
                accounts_ready=True, backups=Backups(NOW - timedelta(days=1), NOW - timedelta(days=1)))  # fmt: skip
    return Observation(**{**base, **kw})


def test_the_agent_waits_for_the_ha_manager_and_the_engine() -> None:
    assert reasons(Observation(now=NOW, role=None, state=None)) == ["waiting for the HA manager to answer"]
    assert reasons(Observation(now=NOW, role="replica", state="creating replica")) == [
        "waiting for the engine: creating replica"
    ]
    assert reasons(Observation(now=NOW, role="replica", state="running")) == ["standby: following the primary"]


def test_a_new_primary_ensures_accounts_then_the_repository_then_the_first_backup() -> None:
    steps = next_steps(primary(accounts_ready=False, repository_ready=False))
    assert [s.kind for s in steps] == ["ensure-accounts", "prepare-repository"]
    steps = next_steps(primary(backups=Backups(None, None)))
    assert [(s.kind, s.argument) for s in steps] == [("backup", "full")]


def test_a_primary_updates_ha_settings_and_catches_up_the_archive_after_promotion() -> None:
    steps = next_steps(primary(ha_settings_current=False, archive_caught_up=False))
    assert [s.kind for s in steps][:2] == ["update-ha-settings", "archive-catch-up"]
    assert "archive-catch-up" not in [s.kind for s in next_steps(primary(archive_caught_up=False, backup_running=True))]


def test_backups_wait_for_the_window_and_take_one_per_day() -> None:
    window = Window.parse("03:00-03:30")
    week_old = Backups(NOW - timedelta(days=8), NOW - timedelta(days=1))
    recent = Backups(NOW - timedelta(days=2), NOW - timedelta(days=1))
    decide = lambda now, b: automated_backup(now=now, window=window, retention_days=7, backups=b)  # noqa: E731
    assert decide(NOW, recent).action == "incr"
    assert decide(NOW, week_old).action == "full"
    assert decide(NOW.replace(hour=4), recent).reason == "waiting for the backup window 03:00-03:30"
    assert decide(NOW, Backups(recent.last_full, NOW - timedelta(minutes=5))).reason == "today's backup is done"
    assert (
        decide(NOW, recent).action
        and not automated_backup(now=NOW, window=window, retention_days=0, backups=recent).action
    )


def test_a_window_across_midnight() -> None:
    window = Window.parse("23:45-00:15")
    assert window.contains(datetime(2026, 1, 2, 0, 5, tzinfo=UTC))
    assert window.contains(datetime(2026, 1, 1, 23, 50, tzinfo=UTC))
    assert not window.contains(datetime(2026, 1, 2, 0, 20, tzinfo=UTC))


def test_snapshots_one_at_a_time_and_deletions() -> None:
    snaps = [
        SnapshotRequest("s1", "u1", None, False, False),
        SnapshotRequest("s2", "u2", None, False, False),
        SnapshotRequest("old", "u3", "L1", True, False, removal_approved=True),
        SnapshotRequest("kept", "u4", "L2", True, True, removal_approved=True),  # Retain: the backup stays
        # Deleted, but the operator has not approved: a server may still be restored from it.
        SnapshotRequest("in-use", "u5", "L3", True, False),
    ]
    steps = next_steps(primary(snapshots=snaps))
    assert [(s.kind, s.argument) for s in steps] == [("remove-snapshot", "old"), ("snapshot", "s1")]


def test_restarts_go_to_standbys_before_the_primary() -> None:
    assert next_steps(primary(pending_restart=True, replicas_pending_restart=True))[0].reason == (
        "restart pending: waiting for the standbys to restart first"
    )
    assert next_steps(Observation(now=NOW, role="replica", state="running", pending_restart=True))[0].kind == "restart"


def test_archive_health() -> None:
    ok = Archiving(NOW, None, 0, 0)
    assert archive_health(ok).healthy
    failing = Archiving(NOW - timedelta(minutes=5), NOW, 3, 2)
    health = archive_health(failing)
    assert not health.healthy and health.reason == "ArchiveFailing" and "2 segment(s)" in health.message
    assert archive_health(Archiving(NOW, None, 0, 40)).reason == "ArchiveLagging"
    # An archive command that hangs (or retries for minutes) has no failure yet: the wait says it.
    stalled = archive_health(Archiving(NOW, None, 0, 3, stalled_seconds=61))
    assert (stalled.healthy, stalled.reason) == (False, "ArchiveStalled") and "none archived for 61s" in stalled.message
    assert archive_health(Archiving(NOW, None, 0, 0, stalled_seconds=0)).healthy


def test_pgbackrest_configuration_keeps_secrets_out_of_the_environment_and_retains_by_time() -> None:
    secrets = pgbackrest.secret_options(REPO, "AK", "SK", "pass")
    text = pgbackrest.configuration(repository=REPO, retention_days=7, data_dir=Path("/data"), port=5432,
                                    socket_dir=Path("/run"),
                                    spool_dir=Path("/spool"), log_dir=Path("/log"), secrets=secrets)  # fmt: skip
    lines = set(text.splitlines())
    assert {"repo1-path=/kuberds/ns/db/u1/automated", "repo2-path=/kuberds/ns/db/u1/snapshots",
            "repo1-s3-endpoint=s3.local", "repo1-storage-port=8443", "repo1-storage-verify-tls=n",
            "repo1-cipher-type=aes-256-cbc", "repo2-cipher-pass=pass", "repo1-s3-key=AK",
            "repo1-retention-full-type=time", "repo1-retention-full=7", "repo2-retention-full=9999999",
            "archive-async=y",
            "[db]", "pg1-path=/data", "pg1-port=5432"} <= lines  # fmt: skip
    assert not any(line.startswith("archive-push-queue-max") for line in lines), "WAL is never dropped"
    plain = Repository(REPO.store, REPO.path, "db", encrypted=False)
    assert pgbackrest.secret_options(plain, None, None, "pass") == {}


def test_a_private_ca_of_the_store_is_verified_against() -> None:
    verified = Repository(ObjectStoreTarget("backups", "https://s3.local:8443", ca_bundle="PEM"), "/p", "db")
    options = pgbackrest.repository_options(1, verified, "automated", Path("/run/store-ca.crt"))
    assert options["repo1-storage-verify-tls"] == "y" and options["repo1-storage-ca-file"] == "/run/store-ca.crt"
    unverified = Repository(ObjectStoreTarget("b", "https://s3.local", verify_tls=False, ca_bundle="PEM"), "/p", "db")
    assert "repo1-storage-ca-file" not in pgbackrest.repository_options(1, unverified, "automated", Path("/ca"))
    text = pgbackrest.restore_configuration(repository=verified, spool_dir=Path("/s"), log_dir=Path("/l"),
                                            data_dir=Path("/d"), secrets={}, ca_file=Path("/run/ca.crt"))  # fmt: skip
    assert {"repo1-storage-ca-file=/run/ca.crt", "repo2-storage-ca-file=/run/ca.crt"} <= set(text.splitlines())


def test_pgbackrest_info_parsing() -> None:
    info = [{"name": "db", "repo": [{"status": {"code": 0}}, {"status": {"code": 2}}], "backup": [
        {"label": "L1F", "type": "full", "timestamp": {"start": 100, "stop": 200}, "database": {"repo-key": 1},
         "info": {"size": 5000, "repository": {"size": 900, "delta": 900}}, "annotation": None},
        {"label": "L2F", "type": "full", "timestamp": {"start": 300, "stop": 400}, "database": {"repo-key": 2},
         "info": {"size": 5000, "repository": {"size": 950, "delta": 950}},
         "annotation": {"kuberds-snapshot": "uid-1"}},
    ]}]  # fmt: skip
    records = pgbackrest.parse_info(info, "db")
    assert [(r.label, r.repo, r.size_bytes) for r in records] == [("L1F", 1, 900), ("L2F", 2, 950)]
    assert records[1].annotations == {"kuberds-snapshot": "uid-1"}
    assert pgbackrest.stanza_ready(info, "db")
    info[0]["repo"][1]["status"]["code"] = 1
    assert not pgbackrest.stanza_ready(info, "db")


def agent_config(**kw) -> AgentConfig:
    base = dict(scope="db", namespace="ns", port=5432, engine_version="15", instances=2,
                scope_label="app.kubernetes.io/instance", labels={"app.kubernetes.io/component": "database"},
                role_label="kuberds.io/role", synchronous=True, parameters={"work_mem": "8MB"},
                backup=BackupPlan(REPO))  # fmt: skip
    return AgentConfig(**{**base, **kw})


POD = Pod.from_environment(POSTGRES, {"POD_NAME": "db-0", "POD_NAMESPACE": "ns", "POD_IP": "10.0.0.5"})
CREDS = Credentials("su", "rep", "master")


def test_patroni_configuration_for_a_multi_az_member() -> None:
    own = pgbackrest.Commands(Path("/run/pgbackrest.conf"), "db")
    doc = patroni.configuration(agent_config(), POD, CREDS, own=own, restore=None)
    dcs = doc["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] and not dcs["synchronous_mode_strict"] and dcs["failsafe_mode"]
    assert dcs["primary_start_timeout"] == 0, "a crashed primary fails over to its synchronous standby at once"
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    k8s = doc["kubernetes"]
    assert k8s["role_label"] == "kuberds.io/role" and k8s["scope_label"] == "app.kubernetes.io/instance"
    assert not k8s["use_endpoints"]
    params = doc["postgresql"]["parameters"]
    assert params["archive_mode"] == "on" and "archive-push" in params["archive_command"]
    assert params["work_mem"] == "8MB" and params["archive_timeout"] == "60s"
    assert doc["postgresql"]["create_replica_methods"] == ["pgbackrest", "basebackup"]
    assert doc["postgresql"]["connect_address"] == "10.0.0.5:5432"
    # An unreachable store reads as "no such WAL" within a second instead of pgBackRest's
    # minutes of retries, which held promotions back.
    restore_command = doc["postgresql"]["recovery_conf"]["restore_command"]
    marker = pgbackrest.silent_store_marker("s3.local", 8443)
    probe = f"bash -c {shlex.quote(pgbackrest.STORE_PROBE)} store-probe s3.local 8443 {marker} 0.5 && "
    assert restore_command.startswith(probe)
    # A store's silence is its own: another store's reads are not skipped for it.
    assert marker.startswith("/tmp/kuberds-store-silent-") and marker != pgbackrest.silent_store_marker("src", 8443)
    assert restore_command.endswith('archive-get %f "%p"')


def test_the_ha_api_is_served_over_tls_when_the_server_has_a_ca() -> None:
    plain = patroni.configuration(agent_config(), POD, CREDS, own=None, restore=None)
    assert "certfile" not in plain["restapi"] and "ctl" not in plain
    ca = Path("/etc/kuberds-tls/ca.crt")
    served = patroni.configuration(agent_config(), POD, CREDS, own=None, restore=None, api_ca=ca)
    assert served["restapi"]["certfile"].endswith("tls.crt") and served["restapi"]["keyfile"].endswith("tls.key")
    assert served["restapi"]["cafile"] == str(ca)
    # Members reach each other by address: Patroni checks the CA, not a name no certificate has.
    assert served["ctl"] == {"insecure": True}
    assert served["restapi"]["connect_address"] == "10.0.0.5:8008"


def test_the_store_probe_never_runs_an_address_as_shell_text(tmp_path: Path) -> None:
    """The address is an argument of the probe, not part of its script: even an address the
    API would refuse runs nothing (here, it would create a file)."""
    import subprocess

    marker = tmp_path / "owned"
    command = pgbackrest.Commands(Path("/nonexistent.conf"), "db").archive_get((f"s3$(touch {marker})x", 9))
    probe = command.rsplit(" && ", 1)[0]
    subprocess.run(["sh", "-c", probe], cwd=tmp_path, timeout=10)
    assert not marker.exists()


def test_the_store_probe_passes_a_store_that_answers_and_fails_a_silent_one_once_per_ten_seconds(
    tmp_path: Path,
) -> None:
    """A frozen store's kernel still completes the handshake (a listener that never accepts
    behaves the same): the probe waits for an answer, gives up after its wait (the agent's is
    half a second), and then answers "silent" at once for the archive reads that follow."""
    import socket
    import subprocess
    import threading
    import time

    marker = tmp_path / "silent"

    def probe(port: int) -> tuple[int, float]:
        # Two seconds, not the agent's half: a busy CI machine once took longer to answer.
        commands = pgbackrest.Commands(Path("/nonexistent.conf"), "db")
        command = commands.archive_get(("127.0.0.1", port), str(marker), wait=2)
        assert commands.archive_get(("127.0.0.1", port)).rsplit(" && ", 1)[0].endswith(" 0.5")
        started = time.monotonic()
        result = subprocess.run(["sh", "-c", command.rsplit(" && ", 1)[0]], timeout=10)
        return result.returncode, time.monotonic() - started

    with socket.socket() as silent, socket.socket() as answering:
        for listener in (silent, answering):
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)

        def answer(times: int) -> None:  # reads the request line and closes, as a TLS server would
            for _ in range(times):
                connection, _ = answering.accept()
                with connection:
                    connection.recv(64)

        threading.Thread(target=answer, args=(2,), daemon=True).start()
        assert probe(answering.getsockname()[1])[0] == 0
        assert not marker.exists()
        code, seconds = probe(silent.getsockname()[1])
        assert code != 0 and seconds < 5, (code, seconds)  # its own bound, not pgBackRest's minutes
        assert marker.exists()
        # The verdict lasts 10 s, whatever answers meanwhile (no connection is even made);
        # then the store is asked again.
        assert probe(answering.getsockname()[1])[0] != 0
        old = time.time() - 11
        os.utime(marker, (old, old))
        assert probe(answering.getsockname()[1])[0] == 0


def test_configuration_files_refuse_control_characters() -> None:
    import pytest

    secrets = pgbackrest.secret_options(REPO, "AK\nrepo1-path=/elsewhere", "SK", "pass")
    with pytest.raises(ValueError, match="control character"):
        pgbackrest.configuration(repository=REPO, retention_days=7, data_dir=Path("/data"), port=5432,
                                 socket_dir=Path("/run"), spool_dir=Path("/spool"), log_dir=Path("/log"),
                                 secrets=secrets)  # fmt: skip


def test_patroni_restore_bootstrap_targets_the_time_in_postgres_format() -> None:
    plan = RestorePlan(REPO, target_time="2026-11-27T21:53:51Z")
    restore = pgbackrest.Commands(Path("/run/pgbackrest-restore.conf"), "src")
    doc = patroni.configuration(agent_config(restore=plan), POD, CREDS, own=None, restore=restore)
    boot = doc["bootstrap"]
    assert boot["method"] == "kuberds_restore"
    recovery = boot["kuberds_restore"]["recovery_conf"]
    assert recovery["recovery_target_time"] == "2026-11-27 21:53:51+00"
    assert recovery["recovery_target_action"] == "promote"
    assert "--type=time '--target=2026-11-27 21:53:51+00'" in boot["kuberds_restore"]["command"], (
        "pgBackRest picks the backup that ended before the target"
    )
    snap = patroni.configuration(agent_config(restore=RestorePlan(REPO, snapshot_set="L2F")), POD, CREDS, own=None,
                                 restore=restore)  # fmt: skip
    assert snap["bootstrap"]["kuberds_restore"]["recovery_conf"]["recovery_target"] == "immediate"
    assert "--set=L2F --type=immediate" in snap["bootstrap"]["kuberds_restore"]["command"]


def test_agent_config_round_trips_through_json() -> None:
    config = agent_config(restore=RestorePlan(REPO, snapshot_set="L2F"), tls=ClientTls("/etc/kuberds-tls", True))
    assert AgentConfig.from_json(config.to_json()) == config


def test_client_tls_serves_the_agents_copies_and_require_refuses_plain_tcp() -> None:
    plain = patroni.configuration(agent_config(), POD, CREDS, own=None, restore=None)
    assert "ssl" not in plain["postgresql"]["parameters"]
    assert all(not rule.startswith("hostssl") for rule in plain["postgresql"]["pg_hba"])

    served = patroni.configuration(agent_config(tls=ClientTls("/etc/kuberds-tls")), POD, CREDS, own=None,
                                   restore=None)  # fmt: skip
    params = served["postgresql"]["parameters"]
    # The engine's own 0600 copies, not the group-readable mounted Secret.
    assert (params["ssl"], params["ssl_cert_file"], params["ssl_key_file"]) == (
        "on", "/var/run/postgresql/tls.crt", "/var/run/postgresql/tls.key")  # fmt: skip
    differs = [(a, b) for a, b in zip(plain["postgresql"]["pg_hba"], served["postgresql"]["pg_hba"], strict=True)
               if a != b]  # fmt: skip
    assert differs == [
        ("host replication replicator all scram-sha-256", "hostssl replication replicator all scram-sha-256")
    ], "TLS offered to clients, replication on it"

    required = patroni.configuration(agent_config(tls=ClientTls("/etc/kuberds-tls", require=True)), POD, CREDS,
                                     own=None, restore=None)  # fmt: skip
    rules = required["postgresql"]["pg_hba"]
    assert rules[:3] == ["local all all scram-sha-256", "local replication replicator scram-sha-256",
                         "host all postgres all reject"]  # fmt: skip
    assert all(r.startswith("hostssl") for r in rules[3:-1]) and rules[-1] == "hostnossl all all all reject"
    assert required["bootstrap"]["pg_hba"] == rules


def test_the_superuser_stays_on_the_socket_and_members_check_each_other() -> None:
    creds = Credentials("su", "rep", "master", rewind_password="rw")
    doc = patroni.configuration(agent_config(tls=ClientTls("/t", ca_file="/t/ca.crt")), POD, creds, own=None,
                                restore=None)  # fmt: skip
    postgresql = doc["postgresql"]
    assert postgresql["use_unix_socket"] and "host all postgres all reject" in postgresql["pg_hba"]
    auth = postgresql["authentication"]
    assert auth["rewind"] == {
        "username": "rewind",
        "password": "rw",
        "sslmode": "verify-ca",
        "sslrootcert": "/t/ca.crt",
    }
    assert auth["replication"]["sslmode"] == "verify-ca"
    without_ca = patroni.configuration(agent_config(tls=ClientTls("/t")), POD, creds, own=None, restore=None)
    assert without_ca["postgresql"]["authentication"]["replication"]["sslmode"] == "require"


def test_a_failing_step_backs_off_doubling_up_to_five_minutes() -> None:
    backoff = Backoff()
    assert backoff.ready("backup", 0)
    backoff.failed("backup", 100)
    assert not backoff.ready("backup", 104) and backoff.ready("backup", 105)
    backoff.failed("backup", 105)
    assert not backoff.ready("backup", 114) and backoff.ready("backup", 115)
    for _ in range(10):
        backoff.failed("backup", 1000)
    assert not backoff.ready("backup", 1299) and backoff.ready("backup", 1300)
    assert backoff.ready("snapshot", 1000), "kinds back off on their own"
    backoff.succeeded("backup")
    assert backoff.ready("backup", 1000)


def test_a_pod_about_to_be_replaced_for_a_new_class_does_not_restart_for_it() -> None:
    observed = Observation(now=datetime(2026, 1, 1, tzinfo=UTC), role="replica", state="running",
                           pending_restart=True, replaced_soon=True)  # fmt: skip
    steps = next_steps(observed)
    assert [s.kind for s in steps if s.kind == "restart"] == []
    assert any("replaces this pod" in s.reason for s in steps)
    assert any(s.kind == "restart" for s in next_steps(Observation(**{**observed.__dict__, "replaced_soon": False})))


def test_a_running_agent_keeps_its_repository_whatever_agent_json_says() -> None:
    from dataclasses import replace

    from kuberds.agent.postgres.agent import kept_repository

    running = BackupPlan(REPO, retention_days=7, window="03:00-03:30")
    elsewhere = replace(REPO, path="/attacker/bucket", encrypted=False)
    kept = kept_repository(running, BackupPlan(elsewhere, retention_days=1, window="04:00-04:30"))
    assert kept.repository == REPO and (kept.retention_days, kept.window) == (1, "04:00-04:30")
    rotated = replace(REPO, store=replace(REPO.store, ca_bundle="NEW CA"))
    assert kept_repository(running, BackupPlan(rotated)).repository.store.ca_bundle == "NEW CA"


def test_cluster_wide_parameters_go_where_patroni_reads_them() -> None:
    """Patroni ignores max_connections and its kin in a member's own configuration: they go to
    the DCS (bootstrap, then the primary's agent keeps them current)."""
    config = agent_config(parameters={"max_connections": "450", "work_mem": "8MB", "Max_Locks_Per_Transaction": "128"})
    dcs = patroni.dynamic_settings(config)
    assert dcs["postgresql"]["parameters"] == {"max_connections": "450", "max_locks_per_transaction": "128"}
    boot = patroni.bootstrap_section(config, POD, None)["dcs"]["postgresql"]
    assert boot["parameters"]["max_connections"] == "450" and boot["use_pg_rewind"]
    held = {
        **dcs,
        "ttl": HaTiming().ttl,
        "postgresql": {"use_slots": True, "parameters": {"max_connections": 450, "max_locks_per_transaction": "128"}},
    }
    assert patroni.settings_current(held, dcs), "100 and '100' are the same value"
    held["postgresql"]["parameters"]["max_connections"] = 112
    assert not patroni.settings_current(held, dcs)


def test_the_agent_keeps_working_on_its_last_view_while_the_api_server_is_away() -> None:
    """A refused connection (nothing listens on the port) is what an API server outage looks
    like to the agent: its snapshot requests come from the last list, its loop goes on."""
    import kubernetes

    from kuberds.agent.kube import RESOURCES, AgentKube, KubeError
    from kuberds.agent.snapshots import Snapshots
    from kuberds.restclient import RestClient

    configuration = kubernetes.client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    configuration.retries = 0
    away = AgentKube(RestClient(kubernetes.client.ApiClient(configuration), RESOURCES, timeout=2))
    try:
        away.list("DBSnapshot", "ns")
        raise AssertionError("the list should have failed")
    except KubeError:
        pass
    listed = {"metadata": {"name": "nightly", "uid": "u1"}, "spec": {"source": {"dbInstance": "db"}}, "status": {}}
    snapshots = Snapshots(away, "ns", "db")
    snapshots.cache = (0.0, [listed])  # listed before the outage, long enough ago to list again
    assert [s.name for s in snapshots.requests(lambda uid: None)] == ["nightly"]


def test_a_stall_counts_from_the_last_progress_of_the_archive() -> None:
    from types import SimpleNamespace

    from kuberds.agent.postgres.backups import PgBackRest

    state = SimpleNamespace(waiting_since=None, stall_mark=None)

    def stalled(behind: int, done_upto: int | None, now: float) -> float:
        return PgBackRest._stalled(state, behind, done_upto, now)  # type: ignore[arg-type]

    assert stalled(0, 10, now=100) == 0
    assert stalled(2, 10, now=100) == 0  # segments start waiting
    assert stalled(3, 10, now=130) == 30
    assert stalled(2, 11, now=140) == 0  # one archived: progress, the wait starts again
    assert stalled(2, 11, now=205) == 65
    assert stalled(0, 13, now=210) == 0


SOURCE = StandbySource(host="src.ns.svc", port=5432, ssl_mode="verify-full", ca_bundle="PEM", seed_from_backup=True)


def test_a_replica_follows_its_source_as_a_standby_cluster_seeded_from_its_backup() -> None:
    own = pgbackrest.Commands(Path("/run/pgbackrest.conf"), "rr")
    restore = pgbackrest.Commands(Path("/run/pgbackrest-restore.conf"), "src")
    config = agent_config(instances=1, synchronous=False, standby=SOURCE, restore=RestorePlan(REPO))
    doc = patroni.configuration(config, POD, CREDS, own=own, restore=restore)
    standby = doc["bootstrap"]["dcs"]["standby_cluster"]
    assert (standby["host"], standby["port"]) == ("src.ns.svc", 5432)
    assert standby["create_replica_methods"] == [patroni.SEED_METHOD, "basebackup"], "backup first, copy as fallback"
    assert standby["restore_command"] == restore.archive_get(("s3.local", 8443)), "the source's archive, probed"
    assert "--type=standby" in doc["postgresql"][patroni.SEED_METHOD]["command"]
    assert "method" not in doc["bootstrap"], "seeded as a standby, not restored and promoted"
    replication = doc["postgresql"]["authentication"]["replication"]
    assert replication["sslmode"] == "verify-full" and replication["sslrootcert"].endswith("source-ca.crt")
    assert doc["postgresql"]["use_unix_socket_repl"], "its own replication connections stay on the socket"
    unseeded = replace(config, standby=replace(SOURCE, seed_from_backup=False))
    assert patroni.standby_cluster(unseeded, restore)["create_replica_methods"] == ["basebackup"]
    # Promotion: the settings the agent keeps in the DCS no longer name a source.
    assert patroni.dynamic_settings(replace(config, standby=None), restore)["standby_cluster"] is None
    assert "standby_cluster" not in patroni.bootstrap_section(agent_config(), POD, None)["dcs"]


def test_a_replica_leader_follows_until_told_to_stop() -> None:
    leader = dict(now=NOW, role="replica", state="running", standby_leader=True)
    assert reasons(Observation(**leader, following_source=True)) == ["replica: following the source"]
    assert reasons(Observation(**leader, following_source=True, ha_settings_current=False)) == [
        "replica: HA settings changed: updating them"
    ]
    promote = next_steps(Observation(**leader, following_source=False))
    assert [(s.kind, s.reason) for s in promote] == [
        ("update-ha-settings", "replica: the source is no longer followed: promoting")
    ]


def test_the_agent_never_sends_standby_cluster_but_its_removal() -> None:
    """A PATCH applies to the DCS as it is when it arrives: a body with standby_cluster sent
    after the operator promoted the replica would demote it again."""
    config = agent_config(instances=1, synchronous=False, standby=SOURCE, restore=RestorePlan(REPO))
    following = {"standby_cluster": {"host": "src.ns.svc"}, "ttl": 6}
    assert "standby_cluster" not in patroni.settings_to_send(config, None, following)
    assert "standby_cluster" not in patroni.settings_to_send(config, None, {}), "an empty DCS is not a promotion"
    promoted = replace(config, standby=None)
    assert patroni.settings_to_send(promoted, None, following)["standby_cluster"] is None
    assert "standby_cluster" not in patroni.settings_to_send(promoted, None, {"ttl": 6}), "already promoted"


def test_restore_to_the_latest_moment_names_no_target_action() -> None:
    """pgBackRest refuses --target-action with --type=default (a clone, pointInTime latest);
    with a time or a snapshot's set it is needed, so the restored server promotes."""
    commands = pgbackrest.Commands(Path("/run/pgbackrest-restore.conf"), "src")
    latest = commands.restore(Path("/data"), None)
    assert "--type=default" in latest and not any(a.startswith("--target-action") for a in latest)
    timed = commands.restore(Path("/data"), None, "2026-12-05 01:00:00+00")
    assert "--type=time" in timed and "--target-action=promote" in timed
    assert "--target-action=promote" in commands.restore(Path("/data"), "20261205-010000F")


def test_a_snapshot_phase_the_agent_writes_is_said_by_ready_too() -> None:
    from kuberds.contract.snapshots import with_ready

    found = {"type": "SourceFound", "status": "True", "reason": "SourceExists"}
    waiting = {"type": "Ready", "status": "False", "reason": "WaitingForAgent", "lastTransitionTime": "t0"}
    creating = with_ready([found, waiting], "Creating", 1, "t1")
    assert creating[0] == found and creating[1]["reason"] == "Creating"
    assert creating[1]["lastTransitionTime"] == "t0"  # still False: no transition
    available = with_ready(creating, "Available", 1, "t2")
    assert [c["status"] for c in available] == ["True", "True"] and available[1]["lastTransitionTime"] == "t2"
    assert available[1]["observedGeneration"] == 1
    failed = with_ready([found], "Failed", None, "t3")[1]
    assert failed["status"] == "False" and "observedGeneration" not in failed


def test_a_snapshot_taken_before_ready_said_its_phase_is_caught_up() -> None:
    from kuberds.contract.snapshots import ready_lags

    waiting = [{"type": "Ready", "status": "False", "reason": "WaitingForAgent"}]
    assert ready_lags({"phase": "Available", "conditions": waiting})
    assert not ready_lags({"phase": "Available", "conditions": [{"type": "Ready", "reason": "Available"}]})
    assert not ready_lags({"phase": "Pending", "conditions": waiting})  # the operator's phase: not the agent's
