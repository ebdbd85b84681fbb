"""kuberds_redis_* metrics, read from the member's own Redis (INFO) at every scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kuberds.agent.metrics_http import serve_metrics as serve
from kuberds.agent.redis.snapshots import SnapshotStats

log = logging.getLogger("kuberds.agent")

GAUGES = {
    "used_memory": ("kuberds_redis_used_memory_bytes", "Memory Redis uses"),
    "maxmemory": ("kuberds_redis_maxmemory_bytes", "The memory limit of the dataset"),
    "connected_clients": ("kuberds_redis_connected_clients", "Client connections open now"),
    "connected_slaves": ("kuberds_redis_connected_replicas", "Replicas streaming from this member"),
    "instantaneous_ops_per_sec": ("kuberds_redis_ops_per_second", "Commands per second, as Redis samples them"),
    "master_repl_offset": ("kuberds_redis_replication_offset", "Replication offset of this member"),
}
COUNTERS = {
    "keyspace_hits": ("kuberds_redis_keyspace_hits", "Reads that found their key"),
    "keyspace_misses": ("kuberds_redis_keyspace_misses", "Reads that did not"),
    "evicted_keys": ("kuberds_redis_evicted_keys", "Keys evicted at maxmemory"),
    "expired_keys": ("kuberds_redis_expired_keys", "Keys expired"),
    "total_commands_processed": ("kuberds_redis_commands", "Commands processed"),
}


def replica_lag_bytes(info: dict) -> int | None:
    """On a primary: how far the slowest replica is behind, in bytes (None: no replica)."""
    offsets = [int(v["offset"]) for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return int(info.get("master_repl_offset", 0)) - min(offsets) if offsets else None


def info_metrics(info: dict) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    yield GaugeMetricFamily("kuberds_redis_primary", "1 on the primary, 0 on a replica",
                            value=1 if info.get("role") == "master" else 0)  # fmt: skip
    for key, (name, text) in GAUGES.items():
        if key in info:
            yield GaugeMetricFamily(name, text, value=float(info[key]))
    for key, (name, text) in COUNTERS.items():
        if key in info:
            yield CounterMetricFamily(name, text, value=float(info[key]))
    lag = replica_lag_bytes(info)
    if lag is not None:
        yield GaugeMetricFamily("kuberds_redis_replica_lag_bytes", "Bytes the slowest replica has still to receive",
                                value=lag)  # fmt: skip


def snapshot_metrics(stats: SnapshotStats) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """What this member's snapshots did (a member that never was the taker says 0 taken)."""
    yield CounterMetricFamily("kuberds_redis_snapshots", "Snapshots this member took", value=stats.taken)
    yield CounterMetricFamily("kuberds_redis_snapshot_failures", "Snapshot looks that failed", value=stats.failed)
    if stats.last_time is not None:
        yield GaugeMetricFamily("kuberds_redis_last_snapshot_timestamp_seconds", "When the last snapshot finished",
                                value=stats.last_time)  # fmt: skip
        yield GaugeMetricFamily("kuberds_redis_last_snapshot_duration_seconds", "BGSAVE, seal and upload of the last",
                                value=stats.last_seconds)  # fmt: skip
        yield GaugeMetricFamily("kuberds_redis_last_snapshot_bytes", "Stored size of the last snapshot",
                                value=stats.last_bytes)  # fmt: skip


class Collector:
    def __init__(self, client: redis.Redis, snapshots: SnapshotStats | None = None):
        self.client, self.snapshots = client, snapshots

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("kuberds_redis_up", "1 when Redis answers INFO")
        try:
            info = self.client.info()
        except (redis.RedisError, OSError) as error:
            log.warning("redis INFO: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from info_metrics(info)
        if self.snapshots is not None:
            yield from snapshot_metrics(self.snapshots)


def serve_metrics(agent) -> None:
    serve(
        agent.pod.metrics_port,
        agent.pod.listen_address,
        Collector(agent.local, agent.snapshots.stats if agent.snapshots else None),
    )
