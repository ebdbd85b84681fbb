"""kuberds_mariadb_* metrics from what mariadbd answers, as data."""

from __future__ import annotations

from kuberds.agent.mariadb.metrics import gtid_metrics, replica_metrics, status_metrics, volume_metrics


def samples(families) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_a_primary_says_its_acknowledged_and_unacknowledged_commits() -> None:
    status = {"Threads_connected": "7", "Questions": "1200", "Rpl_semi_sync_master_clients": "1",
              "Rpl_semi_sync_master_yes_tx": "1100", "Rpl_semi_sync_master_no_tx": "0", "Unrelated": "3"}  # fmt: skip
    got = samples(status_metrics(status, read_only=False))
    assert got[("kuberds_mariadb_primary", ())] == 1 and got[("kuberds_mariadb_connections", ())] == 7
    assert got[("kuberds_mariadb_semi_sync_replicas", ())] == 1
    assert got[("kuberds_mariadb_semi_sync_acknowledged_commits_total", ())] == 1100
    assert got[("kuberds_mariadb_semi_sync_unacknowledged_commits_total", ())] == 0
    assert got[("kuberds_mariadb_queries_total", ())] == 1200
    assert not any("nrelated" in name for name, _ in got)


def test_a_replica_says_its_threads_and_lag_and_a_primary_says_none() -> None:
    got = samples(replica_metrics({"Slave_IO_Running": "Yes", "Slave_SQL_Running": "No", "Seconds_Behind_Master": 4}))
    assert got[("kuberds_mariadb_replication_thread_running", (("thread", "io"),))] == 1
    assert got[("kuberds_mariadb_replication_thread_running", (("thread", "sql"),))] == 0
    assert got[("kuberds_mariadb_replication_lag_seconds", ())] == 4
    assert samples(replica_metrics({})) == {}
    assert samples(status_metrics({}, read_only=True))[("kuberds_mariadb_primary", ())] == 0


def test_the_gtid_sequence_by_domain() -> None:
    got = samples(gtid_metrics("0-1-1477,1-2-5"))
    assert got == {("kuberds_mariadb_gtid_sequence", (("domain", "0"),)): 1477,
                   ("kuberds_mariadb_gtid_sequence", (("domain", "1"),)): 5}  # fmt: skip
    assert samples(gtid_metrics("")) == {}


def test_the_volume_is_measured_under_the_names_postgres_uses(tmp_path) -> None:
    seen = {m.name: m.samples[0].value for m in volume_metrics(tmp_path)}
    assert set(seen) == {"kuberds_volume_size_bytes", "kuberds_volume_free_bytes"}
    assert 0 < seen["kuberds_volume_free_bytes"] <= seen["kuberds_volume_size_bytes"]
    assert list(volume_metrics(tmp_path / "not mounted yet")) == []
