"""kuberds_mariadb_* metrics, read from the member's own mariadbd at every scrape over a
connection of their own (the HA loop's is not shared between threads): connections, queries,
commits, the buffer pool, semi-synchronous acknowledgements (a commit that returned without
one would show in kuberds_mariadb_semi_sync_unacknowledged_commits), replication lag and
threads, and where the member's GTIDs are."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import pymysql
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kuberds.agent.mariadb.gtid import GtidPos
from kuberds.agent.mariadb.server import Sql
from kuberds.agent.metrics_http import serve_metrics as serve
from kuberds.agent.report import volume_usage

log = logging.getLogger("kuberds.agent")

Metric = GaugeMetricFamily | CounterMetricFamily

GAUGES = {
    "Threads_connected": ("kuberds_mariadb_connections", "Client connections open now"),
    "Threads_running": ("kuberds_mariadb_threads_running", "Statements running now"),
    "Rpl_semi_sync_master_clients": ("kuberds_mariadb_semi_sync_replicas", "Replicas acknowledging commits"),
    "Innodb_buffer_pool_bytes_data": ("kuberds_mariadb_buffer_pool_data_bytes", "Data in the InnoDB buffer pool"),
    "Uptime": ("kuberds_mariadb_uptime_seconds", "Seconds since mariadbd started"),
}
COUNTERS = {
    "Questions": ("kuberds_mariadb_queries", "Statements clients sent"),
    "Com_commit": ("kuberds_mariadb_commits", "Explicit COMMITs"),
    "Slow_queries": ("kuberds_mariadb_slow_queries", "Statements slower than long_query_time"),
    "Aborted_connects": ("kuberds_mariadb_aborted_connects", "Connection attempts that failed"),
    "Rpl_semi_sync_master_yes_tx": ("kuberds_mariadb_semi_sync_acknowledged_commits",
                                    "Commits a replica acknowledged before they returned"),
    "Rpl_semi_sync_master_no_tx": ("kuberds_mariadb_semi_sync_unacknowledged_commits",
                                   "Commits that returned without an acknowledgement (0 while semi-sync holds)"),
}  # fmt: skip


def status_metrics(status: Mapping[str, str], read_only: bool) -> Iterator[Metric]:
    yield GaugeMetricFamily("kuberds_mariadb_primary", "1 on the writable primary, 0 on a replica",
                            value=0 if read_only else 1)  # fmt: skip
    for key, (name, text) in GAUGES.items():
        if key in status:
            yield GaugeMetricFamily(name, text, value=float(status[key]))
    for key, (name, text) in COUNTERS.items():
        if key in status:
            yield CounterMetricFamily(name, text, value=float(status[key]))


def replica_metrics(replica: Mapping[str, object]) -> Iterator[Metric]:
    """From SHOW SLAVE STATUS (nothing on a member that replicates from no one)."""
    if not replica:
        return
    running = GaugeMetricFamily("kuberds_mariadb_replication_thread_running", "1 while the thread runs",
                                labels=["thread"])  # fmt: skip
    running.add_metric(["io"], 1 if replica.get("Slave_IO_Running") == "Yes" else 0)
    running.add_metric(["sql"], 1 if replica.get("Slave_SQL_Running") == "Yes" else 0)
    yield running
    lag = replica.get("Seconds_Behind_Master")
    if lag is not None:
        yield GaugeMetricFamily("kuberds_mariadb_replication_lag_seconds", "Seconds behind the primary, as the "
                                "replica's SQL thread sees it", value=float(lag))  # fmt: skip


def gtid_metrics(binlog_pos: str | None) -> Iterator[Metric]:
    sequence = GaugeMetricFamily("kuberds_mariadb_gtid_sequence", "The last GTID's sequence number in this "
                                 "member's binlog, by domain", labels=["domain"])  # fmt: skip
    for domain, gtid in GtidPos.parse(binlog_pos).domains.items():
        sequence.add_metric([str(domain)], gtid.seq)
    yield sequence


def volume_metrics(volume: Path | None) -> Iterator[Metric]:
    """The data volume's filesystem, under the names PostgreSQL's agent uses (one dashboard)."""
    size, free = volume_usage(volume) if volume is not None else (None, None)
    if size is None or free is None:
        return
    for name, text, value in (("kuberds_volume_size_bytes", "Size of the data volume's filesystem", size),
                              ("kuberds_volume_free_bytes", "Space the database may still write on its volume",
                               free)):  # fmt: skip
        gauge = GaugeMetricFamily(name, text)
        gauge.add_metric([], value)
        yield gauge


class Collector:
    def __init__(self, sql: Sql, volume: Path | None = None):
        self.sql, self.volume = sql, volume

    def collect(self) -> Iterator[Metric]:
        yield from volume_metrics(self.volume)
        up = GaugeMetricFamily("kuberds_mariadb_up", "1 when mariadbd answers")
        try:
            status = {r["Variable_name"]: r["Value"] for r in self.sql.rows("SHOW GLOBAL STATUS")}
            variables = self.sql.rows("SELECT @@read_only AS read_only, @@gtid_binlog_pos AS binlog_pos")[0]
            replica = (self.sql.rows("SHOW SLAVE STATUS") or [{}])[0]
        except (pymysql.Error, OSError) as error:
            log.warning("metrics: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from status_metrics(status, bool(int(variables["read_only"])))
        yield from replica_metrics(replica)
        yield from gtid_metrics(variables["binlog_pos"])


def serve_metrics(address: str, port: int, sql: Sql, volume: Path | None = None) -> None:
    serve(port, address, Collector(sql, volume))
