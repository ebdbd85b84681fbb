"""What each engine's image looks like from inside and outside the pod: the operator mounts
volumes and opens ports by it (kuberds.engines), the agent finds its files by it
(kuberds.agent). One entry per engine that has a data plane."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodLayout:
    uid: int  # the image's non-root user (and group): the engine runs as it
    data_mount: str  # where the data volume is mounted
    data_dir: str  # the engine's data directory, inside the mount
    run_dir: str  # sockets and the agent's generated files (an emptyDir)
    writable_paths: tuple[str, ...]  # emptyDirs needed beside a read-only root filesystem
    private_paths: tuple[str, ...]  # of those, the ones holding secrets: kept in memory, never on a disk
    bin_dir: str  # the engine's programs
    agent_port: int  # health and the HA manager's API
    metrics_port: int  # Prometheus metrics of the agent


POSTGRES = PodLayout(
    uid=999,
    data_mount="/var/lib/postgresql/data",
    data_dir="/var/lib/postgresql/data/pgdata",
    run_dir="/var/run/postgresql",
    writable_paths=("/tmp", "/var/run/postgresql"),
    private_paths=("/var/run/postgresql",),  # configuration files with passwords and keys, TLS keys
    bin_dir="/usr/lib/postgresql/15/bin",
    agent_port=8008,  # Patroni's REST API: /liveness, /readiness, switchover
    metrics_port=9187,
)

# No data volume: Memcached keeps everything in memory. The agent port serves Auto Discovery
# (`config get cluster`), which the configuration endpoint routes to.
MEMCACHED = PodLayout(
    uid=999,
    data_mount="",
    data_dir="/tmp",
    run_dir="/var/run/memcached",
    writable_paths=("/tmp",),
    private_paths=(),
    bin_dir="/usr/bin",
    agent_port=11212,
    metrics_port=9150,
)

# Redis keeps its dataset in memory (no data volume); redis.conf holds the passwords, so the
# run directory is memory. The agent port answers the kubelet's probes.
REDIS = PodLayout(
    uid=999,
    data_mount="",
    data_dir="/var/lib/redis",
    run_dir="/var/run/redis",
    writable_paths=("/tmp", "/var/run/redis", "/var/lib/redis"),
    private_paths=("/var/run/redis",),
    bin_dir="/usr/bin",
    agent_port=8010,
    metrics_port=9121,
)

# The data directory is a folder of the volume (its root holds lost+found on a real filesystem);
# my.cnf and the client file carry passwords, so the run directory is memory.
MARIADB = PodLayout(
    uid=999,
    data_mount="/var/lib/mysql",
    data_dir="/var/lib/mysql/data",
    run_dir="/var/run/mysqld",
    writable_paths=("/tmp", "/var/run/mysqld"),
    private_paths=("/var/run/mysqld",),
    bin_dir="/usr/sbin",
    agent_port=8011,
    metrics_port=9104,
)

LAYOUTS: dict[str, PodLayout] = {"postgres": POSTGRES, "memcached": MEMCACHED, "redis": REDIS, "mariadb": MARIADB}


@dataclass(frozen=True)
class ProxyLayout:
    """A proxy pod (the engine's image running the proxy under `kuberds proxy ENGINE`)."""

    uid: int
    program: str
    config_dir: str  # the operator's configuration file (a ConfigMap, read-only)
    config_file: str
    hba_file: str  # beside config_file
    run_dir: str  # the generated user list (passwords) and the socket: a memory emptyDir
    users_file: str  # in run_dir
    port: int  # clients
    metrics_port: int  # Prometheus metrics of the proxy's pools


PGBOUNCER = ProxyLayout(
    uid=999,
    program="/usr/sbin/pgbouncer",
    config_dir="/etc/kuberds-proxy",
    config_file="pgbouncer.ini",
    hba_file="pg_hba.conf",
    run_dir="/var/run/pgbouncer",
    users_file="userlist.txt",
    port=6432,
    metrics_port=9127,
)

PROXY_LAYOUTS: dict[str, ProxyLayout] = {"postgres": PGBOUNCER}
