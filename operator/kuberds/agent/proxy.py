"""A proxy pod's process, `kuberds proxy ENGINE`: PgBouncer under a small supervisor.

It writes the user list (the two logins of kuberds.contract.proxy, from the environment)
into memory, starts PgBouncer with the operator's configuration file and none of the
secrets in its environment, turns the kubelet's SIGTERM into PgBouncer's safe shutdown
(SIGINT: transactions under way finish), passes SIGHUP on (reload), serves the pools'
figures (SHOW POOLS, SHOW STATS on the admin console) as Prometheus metrics, and resumes a
pause that outlived HOLD_LIMIT_SECONDS (its operator went away mid-switchover): PgBouncer
1.18 has no pause timeout of its own, and says it is paused only in its log, which passes
through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kuberds.agent.metrics_http import serve_metrics
from kuberds.agent.processes import OsUser
from kuberds.contract import TLS_CA_FILE, TLS_DIR, TLS_FILES, environment
from kuberds.contract.layouts import PROXY_LAYOUTS, ProxyLayout
from kuberds.contract.proxy import CONSOLE_DATABASE, CONSOLE_USER, HOLD_LIMIT_SECONDS, users_file

log = logging.getLogger("kuberds.proxy")

# Overrides for running outside a pod (the data-plane tests run several proxies on one host).
OVERRIDES = {
    "config_file": "KUBERDS_PROXY_CONFIG",
    "run_dir": "KUBERDS_RUN_DIR",
    "port": "KUBERDS_PROXY_PORT",
    "metrics_port": "KUBERDS_METRICS_PORT",
    "user": "KUBERDS_ENGINE_USER",
    "tls_dir": "KUBERDS_TLS_DIR",
    "watch_seconds": "KUBERDS_PROXY_WATCH_SECONDS",
}
# How often mounted files are compared: the kubelet updates a mounted ConfigMap or Secret
# within about a minute of its change.
WATCH_SECONDS = 5


@dataclass(frozen=True)
class ProxyPod:
    config_file: Path
    hba_file: Path
    tls_dir: Path
    run_dir: Path
    port: int
    metrics_port: int
    user: str | None  # drop to this OS user (tests run as root; a pod never does)
    program: str
    users_file: str
    proxy_password: str
    console_password: str
    watch_seconds: float = WATCH_SECONDS

    @classmethod
    def from_environment(cls, layout: ProxyLayout, env: Mapping[str, str]) -> ProxyPod:
        def given(name: str) -> str | None:
            return env.get(OVERRIDES[name]) or None

        return cls(
            config_file=(config := Path(given("config_file") or f"{layout.config_dir}/{layout.config_file}")),
            hba_file=config.with_name(layout.hba_file),
            tls_dir=Path(given("tls_dir") or TLS_DIR),
            run_dir=Path(given("run_dir") or layout.run_dir),
            port=int(given("port") or layout.port),
            metrics_port=int(given("metrics_port") or layout.metrics_port),
            user=given("user"),
            program=layout.program,
            users_file=layout.users_file,
            proxy_password=env.get(environment.PROXY_PASSWORD.env, ""),
            console_password=env.get(environment.PROXY_CONSOLE_PASSWORD.env, ""),
            watch_seconds=float(given("watch_seconds") or WATCH_SECONDS),
        )


class PoolCollector:
    """Reads the admin console on every scrape: no figure older than the scrape itself."""

    def __init__(self, pod: ProxyPod):
        self.pod = pod

    def console(self) -> psycopg.Connection:
        # The console speaks the simple query protocol only: statements without parameters.
        return psycopg.connect(host="127.0.0.1", port=self.pod.port, dbname=CONSOLE_DATABASE, user=CONSOLE_USER,
                               password=self.pod.console_password, autocommit=True, connect_timeout=3,
                               prepare_threshold=None)  # fmt: skip

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("kuberds_proxy_up", "1 when the proxy's admin console answers")
        try:
            with self.console() as conn:
                pools, stats = _rows(conn, "SHOW POOLS"), _rows(conn, "SHOW STATS")
        except psycopg.Error as error:
            log.warning("console unreachable: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from pool_metrics(pools)
        yield from stats_metrics(stats)


def _rows(conn: psycopg.Connection, statement: str) -> list[dict]:
    cursor = conn.cursor()
    cursor.execute(statement)
    columns = [c.name for c in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


POOL_GAUGES = {
    "cl_active": ("kuberds_proxy_client_connections_active", "Clients linked to a server connection or idle"),
    "cl_waiting": ("kuberds_proxy_client_connections_waiting", "Clients waiting for a server connection"),
    "sv_active": ("kuberds_proxy_server_connections_active", "Server connections linked to a client"),
    "sv_idle": ("kuberds_proxy_server_connections_idle", "Server connections free for a client"),
    "sv_login": ("kuberds_proxy_server_connections_login", "Server connections logging in"),
    "maxwait": ("kuberds_proxy_max_wait_seconds", "How long the oldest waiting client has waited"),
}
STATS_COUNTERS = {
    "total_xact_count": ("kuberds_proxy_transactions", "Transactions pooled", 1),
    "total_query_count": ("kuberds_proxy_queries", "Queries pooled", 1),
    "total_wait_time": ("kuberds_proxy_client_wait_seconds", "Time clients waited for a server connection", 1e-6),
    "total_query_time": ("kuberds_proxy_query_seconds", "Time spent in queries on server connections", 1e-6),
}


def pool_metrics(pools: list[dict]) -> Iterator[GaugeMetricFamily]:
    for column, (name, text) in POOL_GAUGES.items():
        family = GaugeMetricFamily(name, text, labels=["database", "user"])
        for pool in pools:
            if pool.get("database") != CONSOLE_DATABASE and column in pool:
                family.add_metric([pool["database"], pool["user"]], float(pool[column] or 0))
        yield family


def stats_metrics(stats: list[dict]) -> Iterator[CounterMetricFamily]:
    for column, (name, text, scale) in STATS_COUNTERS.items():
        family = CounterMetricFamily(name, text, labels=["database"])
        for row in stats:
            if row.get("database") != CONSOLE_DATABASE and column in row:
                family.add_metric([row["database"]], float(row[column] or 0) * scale)
        yield family


class PauseWatch:
    """Follows PgBouncer's log for PAUSE and RESUME, and resumes a pause held too long."""

    def __init__(self, resume: Callable[[], None], limit: float = HOLD_LIMIT_SECONDS,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.resume, self.limit, self.clock = resume, limit, clock
        self.paused_at: float | None = None

    def saw(self, line: str) -> None:
        if "PAUSE command issued" in line:
            self.paused_at = self.clock()
        elif "RESUME command issued" in line:
            self.paused_at = None

    def check(self) -> bool:
        """Resumes when the pause is older than the limit; whether it did."""
        if self.paused_at is None or self.clock() - self.paused_at < self.limit:
            return False
        log.warning("paused for more than %ss with no RESUME: resuming", self.limit)
        self.paused_at = None
        try:
            self.resume()
        except psycopg.Error as error:
            log.warning("RESUME failed: %s", error)
        return True


def fingerprint(pod: ProxyPod) -> str:
    """The content of every file PgBouncer reads at a reload (missing files count too)."""
    digest = hashlib.sha256()
    for path in (pod.config_file, pod.hba_file, *(pod.tls_dir / f for f in (*TLS_FILES, TLS_CA_FILE))):
        digest.update(str(path).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _relay(stream, watch: PauseWatch) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        watch.saw(line)
        sys.stdout.write(line)
        sys.stdout.flush()


def run(pod: ProxyPod, env: Mapping[str, str]) -> int:
    pod.run_dir.mkdir(parents=True, exist_ok=True)
    secrets = {var.env for var in environment.SECRET_VARS}
    clean = {k: v for k, v in env.items() if k not in secrets}
    user = OsUser(pod.user, clean, pod.run_dir)
    user.own(pod.run_dir)
    user.write_private(pod.run_dir / pod.users_file, users_file(pod.proxy_password, pod.console_password))
    process = user.popen([pod.program, str(pod.config_file)], stderr=subprocess.PIPE)
    collector = PoolCollector(pod)

    def resume() -> None:
        with collector.console() as conn:
            conn.cursor().execute("RESUME")

    watch = PauseWatch(resume)
    threading.Thread(target=_relay, args=(process.stderr, watch), daemon=True).start()

    def watchdog() -> None:
        """A stale pause is resumed; a changed configuration or certificate is reloaded, not
        restarted: no client is disconnected for a new pool size or a renewed certificate."""
        seen = fingerprint(pod)
        while process.poll() is None:
            time.sleep(pod.watch_seconds)
            watch.check()
            now = fingerprint(pod)
            if now != seen:
                log.info("configuration or certificate changed: reloading")
                process.send_signal(signal.SIGHUP)
                seen = now

    threading.Thread(target=watchdog, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGINT))  # safe shutdown
    signal.signal(signal.SIGINT, lambda *_: process.send_signal(signal.SIGINT))
    signal.signal(signal.SIGHUP, lambda *_: process.send_signal(signal.SIGHUP))
    serve_metrics(pod.metrics_port, "0.0.0.0", collector)
    log.info("pgbouncer started (pid %s) on port %s", process.pid, pod.port)
    while True:
        try:
            return process.wait()
        except InterruptedError:  # a signal arrived; keep waiting
            continue


def main(engine: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    layout = PROXY_LAYOUTS.get(engine)
    if layout is None:
        print(f"kuberds proxy {engine}: this engine has no proxy.", file=sys.stderr)
        return 2
    env = dict(os.environ)
    return run(ProxyPod.from_environment(layout, env), env)
