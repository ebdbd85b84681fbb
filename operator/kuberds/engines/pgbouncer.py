"""PgBouncer, PostgreSQL's proxy: its configuration file and the defaults RDS Proxy would pick.
Pure. How it authenticates: kuberds.contract.proxy; the pod side (the user list, the process,
metrics): kuberds.agent.proxy."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.contract.layouts import PGBOUNCER, ProxyLayout
from kuberds.contract.proxy import AUTH_QUERY, CONSOLE_DATABASE, CONSOLE_USER, PROXY_USER

# Server connections kept for the engine itself: superuser_reserved_connections (3), the
# agent and Patroni (a few), replication has its own slots.
RESERVED_SERVER_CONNECTIONS = 10
# RDS Proxy's ConnectionBorrowTimeout: how long a client waits for a server connection.
BORROW_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class PoolSettings:
    """What one proxy pod is told."""

    server_host: str  # the writer endpoint (a Service name in a cluster)
    server_port: int
    pool_mode: str
    max_client_connections: int
    default_pool_size: int
    max_server_connections: int  # per proxy pod: its share of the server's connections
    client_tls: str  # PgBouncer's sslmode for clients: disable, allow, require
    server_tls: str  # disable, require, verify-full
    tls_dir: str | None = None  # tls.crt, tls.key (and ca.crt for verify-full)
    listen_address: str = "0.0.0.0"
    layout: ProxyLayout = PGBOUNCER
    port: int | None = None  # the layout's when None (tests run several on one host)
    run_dir: str | None = None
    config_dir: str | None = None

    @property
    def hba_path(self) -> str:
        return f"{self.config_dir or self.layout.config_dir}/{self.layout.hba_file}"


def hba_file(settings: PoolSettings) -> str:
    """Who may log in to the proxy, and how: the console user to the console only (the
    operator), the proxy's own login never (it is in the user list for the server's sake),
    everyone else by SCRAM against the verifier the lookup returns; over TLS only when
    client TLS is required."""
    tcp = "hostssl" if settings.client_tls == "require" else "host"
    lines = []
    for network in ("0.0.0.0/0", "::/0"):
        lines += [f"host {CONSOLE_DATABASE} {CONSOLE_USER} {network} scram-sha-256",
                  f"host all {CONSOLE_USER} {network} reject", f"host all {PROXY_USER} {network} reject"]  # fmt: skip
        if tcp == "hostssl":
            lines.append(f"hostnossl all all {network} reject")
        lines.append(f"{tcp} all all {network} scram-sha-256")
    return "\n".join(lines) + "\n"


def config_file(settings: PoolSettings) -> str:
    """pgbouncer.ini. Every value is an enum, a number or a name kuberds built: no user text."""
    layout, run = settings.layout, settings.run_dir or settings.layout.run_dir
    port = settings.port or layout.port
    lines = [
        "[databases]",
        # Any database, on the writer; the lookup runs as PROXY_USER in that database.
        f"* = host={settings.server_host} port={settings.server_port} auth_user={PROXY_USER}",
        "",
        "[pgbouncer]",
        f"listen_addr = {settings.listen_address}",
        f"listen_port = {port}",
        f"unix_socket_dir = {run}",
        "auth_type = hba",
        f"auth_hba_file = {settings.hba_path}",
        f"auth_file = {run}/{layout.users_file}",
        f"auth_user = {PROXY_USER}",
        f"auth_query = {AUTH_QUERY}",
        f"admin_users = {CONSOLE_USER}",
        f"stats_users = {CONSOLE_USER}",
        f"pool_mode = {settings.pool_mode}",
        f"max_client_conn = {settings.max_client_connections}",
        f"default_pool_size = {settings.default_pool_size}",
        f"max_db_connections = {settings.max_server_connections}",
        "reserve_pool_size = 0",
        # A failed server is tried again within a second, never remembered as failed.
        "server_login_retry = 1",
        "server_connect_timeout = 3",
        f"query_wait_timeout = {BORROW_TIMEOUT_SECONDS}",
        # A server that stops answering (a lost node) is given up after 10 s of unacknowledged data.
        "tcp_keepalive = 1",
        "tcp_keepidle = 5",
        "tcp_keepintvl = 1",
        "tcp_keepcnt = 5",
        "tcp_user_timeout = 10000",
        "server_lifetime = 3600",
        "server_idle_timeout = 600",
        # Drivers send these at start-up; the pooled server connection does not need them.
        "ignore_startup_parameters = extra_float_digits,options",
        "log_connections = 0",
        # Every closed connection is logged with its reason ("server conn crashed?" names the
        # server address): the one line an operator needs when clients report errors.
        "log_disconnections = 1",
        "stats_period = 15",
        f"client_tls_sslmode = {settings.client_tls}",
        f"server_tls_sslmode = {settings.server_tls}",
        "server_tls_protocols = secure",
        "client_tls_protocols = secure",
    ]
    if settings.tls_dir and settings.client_tls != "disable":
        lines += [
            f"client_tls_cert_file = {settings.tls_dir}/tls.crt",
            f"client_tls_key_file = {settings.tls_dir}/tls.key",
        ]
    if settings.tls_dir and settings.server_tls == "verify-full":
        lines.append(f"server_tls_ca_file = {settings.tls_dir}/ca.crt")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PgBouncer:
    """PostgreSQL's proxy, as an engine offers it (kuberds.engines.base.Proxy)."""

    name: str = "pgbouncer"
    layout: ProxyLayout = PGBOUNCER

    def config(self, settings: PoolSettings) -> dict[str, str]:
        return {self.layout.config_file: config_file(settings), self.layout.hba_file: hba_file(settings)}

    def pool_problem(self, default_pool_size: int, max_connections: int) -> str | None:
        """A pool larger than the server can serve is refused (the proxy would queue forever)."""
        usable = _usable(max_connections)
        if default_pool_size > usable:
            return (f"proxy.defaultPoolSize {default_pool_size} is above the {usable} connections the server "
                    f"can give the proxy (max_connections {max_connections} less {RESERVED_SERVER_CONNECTIONS} "
                    "kept for the engine)")  # fmt: skip
        return None

    def share_per_pod(self, max_connections: int, replicas: int) -> int:
        """Each proxy pod may hold this many server connections, so all of them together never
        take more than the server has (RDS Proxy's MaxConnectionsPercent of 100)."""
        return max(1, _usable(max_connections) // max(1, replicas))


def _usable(max_connections: int) -> int:
    return max(1, max_connections - RESERVED_SERVER_CONNECTIONS)
