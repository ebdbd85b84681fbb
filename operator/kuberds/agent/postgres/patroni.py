"""Patroni's configuration for one member, from the agent's config. Pure.

High availability is Patroni's job (leader lease in the API server, synchronous standby,
pg_rewind); the agent only describes the member. Choices, and why:
- Kubernetes DCS with ConfigMaps (`<scope>-leader`, `-config`, `-sync`) and the role label
  on pods, so the writer Service (selecting role `master`, the value Patroni 3.0 writes)
  follows the leader without Patroni managing Endpoints.
- Multi-AZ: synchronous_mode, so only a standby that confirmed every commit may be promoted.
  Strict mode only when asked: with two members it blocks writes for good once one is gone.
- primary_start_timeout 0 with a synchronous standby: a crashed primary fails over at once
  instead of being restarted in place for five minutes (safe: the standby has every commit).
- failsafe_mode: a primary keeps running while the API server is unreachable, as long as it
  can still see every member, so an API server blip does not demote it.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

from kuberds.agent.pod import Pod
from kuberds.agent.postgres import pgbackrest
from kuberds.agent.postgres.pgbackrest import Commands
from kuberds.agent.postgres.tls import served_files
from kuberds.contract import AGENT_API_USER
from kuberds.contract.environment import Credentials
from kuberds.contract.settings import AgentConfig

REPLICATION_USER = "replicator"
SUPERUSER = "postgres"
REWIND_USER = "rewind"


def managed_parameters(config: AgentConfig, pod: Pod, commands: Commands | None) -> dict[str, str]:
    """Parameters kuberds owns (the API refuses them in spec.parameters)."""
    parameters = {
        "unix_socket_directories": str(pod.run_dir),
        "archive_mode": "on" if commands else "off",
        "archive_command": commands.archive_push() if commands else "/bin/true",
        # PITR granularity when writes are rare: a segment is closed at least every minute.
        "archive_timeout": "60s",
        "password_encryption": "scram-sha-256",
    }
    if config.synchronous:
        parameters["synchronous_commit"] = "on"
    if config.tls:
        certificate, key = served_files(pod)
        parameters |= {"ssl": "on", "ssl_cert_file": str(certificate), "ssl_key_file": str(key)}
    return parameters


def pg_hba(config: AgentConfig) -> list[str]:
    """Password (SCRAM) for every client. The superuser only on the socket (the agent,
    Patroni and pgBackRest, inside the pod), never over the network; replication only over
    TLS while TLS is served; with tls.require, TCP without TLS is refused altogether."""
    host = "hostssl" if config.tls and config.tls.require else "host"
    replication = "hostssl" if config.tls else "host"
    rules = [
        "local all all scram-sha-256",
        f"local replication {REPLICATION_USER} scram-sha-256",
        f"host all {SUPERUSER} all reject",
        f"{replication} replication {REPLICATION_USER} all scram-sha-256",
        f"{host} all all 127.0.0.1/32 scram-sha-256",
        f"{host} all all ::1/128 scram-sha-256",
        f"{host} all all all scram-sha-256",
    ]
    if host == "hostssl":
        rules.append("hostnossl all all all reject")
    return rules


def peer_tls(config: AgentConfig) -> dict[str, str]:
    """How members connect to each other (replication, pg_rewind): TLS when it is served, the
    peer's certificate checked against the server's CA when the pod has it (kuberds issued the
    certificate); the pods are reached by address, which the certificate does not name."""
    if not config.tls:
        return {}
    if config.tls.ca_file:
        return {"sslmode": "verify-ca", "sslrootcert": config.tls.ca_file}
    return {"sslmode": "require"}


def source_ca_file(pod: Pod) -> Path:
    return pod.run_dir / "source-ca.crt"


def standby_tls(config: AgentConfig, pod: Pod) -> dict[str, str]:
    source = config.standby
    tls = {"sslmode": source.ssl_mode}
    if source.ca_bundle:
        tls["sslrootcert"] = str(source_ca_file(pod))
    return tls


def postgres_time(rfc3339: str) -> str:
    """recovery_target_time refuses RFC 3339's T and Z: 2026-11-27 21:53:51+00."""
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


# Parameters Patroni takes from the DCS only (it starts the postmaster with them, the same on
# every member) and ignores in a member's own configuration: the instance class's
# max_connections, and users' values of these, must go there to take effect.
CLUSTER_WIDE_PARAMETERS = (
    "max_connections", "max_locks_per_transaction", "max_worker_processes", "max_prepared_transactions",
    "wal_level", "track_commit_timestamp", "max_wal_senders", "max_replication_slots", "wal_log_hints",
    "hot_standby",
)  # fmt: skip


def cluster_wide_parameters(config: AgentConfig) -> dict[str, str]:
    lowered = {name.lower(): value for name, value in config.parameters.items()}
    return {name: lowered[name] for name in CLUSTER_WIDE_PARAMETERS if name in lowered}


def standby_cluster(config: AgentConfig, restore: Commands | None) -> dict | None:
    """A read replica follows its source as a Patroni standby cluster: its leader streams from
    the source's endpoint (Patroni's replication login and TLS settings), restores missing
    log from the source's archive, and is seeded from the source's newest backup, else by a
    base backup from the source. None: not a replica (any more)."""
    source = config.standby
    if source is None:
        return None
    methods = ["basebackup"]
    if restore and source.seed_from_backup:
        methods.insert(0, SEED_METHOD)
    section = {"host": source.host, "port": source.port, "create_replica_methods": methods}
    if restore:
        # Probed first: with the source's store unreachable, archive-get would retry for
        # minutes on every segment instead of letting streaming take over.
        store = config.restore.repository.store if config.restore else None
        section["restore_command"] = restore.archive_get(pgbackrest.store_address(store) if store else None)
    return section


SEED_METHOD = "kuberds_seed"


def dynamic_settings(config: AgentConfig, restore: Commands | None = None) -> dict:
    """The cluster-wide settings Patroni keeps in the DCS. `bootstrap.dcs` seeds them only
    when the cluster is created; afterwards the leader's agent PATCHes Patroni's /config
    when they differ (multiAZ turned on later must turn synchronous mode on; a new instance
    class brings another max_connections; a promoted replica's standby_cluster goes, which
    makes Patroni promote its leader)."""
    ha = config.ha
    return {
        "standby_cluster": standby_cluster(config, restore),
        "postgresql": {"parameters": cluster_wide_parameters(config)},
        "ttl": ha.ttl,
        "loop_wait": ha.loop_wait,
        "retry_timeout": ha.retry_timeout,
        "maximum_lag_on_failover": 1048576,
        "primary_start_timeout": 0 if config.synchronous else 300,
        "synchronous_mode": config.synchronous,
        "synchronous_mode_strict": config.synchronous_strict,
        "synchronous_node_count": 1,
        "failsafe_mode": True,
    }


def settings_to_send(config: AgentConfig, restore: Commands | None, current: dict) -> dict:
    """What agent.json asks of the DCS as it is (`current`). standby_cluster is never added
    or rewritten: Patroni's bootstrap puts it there, and only its removal (a promotion, one
    way) is ever sent. A PATCH applies to the DCS as it is when it arrives, so a body that
    carried standby_cluster could undo a promotion the operator made meanwhile."""
    wanted = dynamic_settings(config, restore)
    wanted.pop("standby_cluster")
    if config.standby is None and current.get("standby_cluster"):
        wanted["standby_cluster"] = None  # agent.json names no source: promote
    return wanted


def settings_current(current: dict, wanted: dict) -> bool:
    """Whether Patroni's DCS configuration already holds every wanted value (nested maps
    compared key by key; values as text, since the DCS may hold 100 where we say "100")."""
    for key, value in wanted.items():
        held = current.get(key)
        if isinstance(value, dict):
            if not settings_current(held if isinstance(held, dict) else {}, value):
                return False
        elif held != value and not (isinstance(value, str) and str(held) == value):
            return False
    return True


def bootstrap_section(config: AgentConfig, pod: Pod, restore: Commands | None) -> dict:
    settings = {k: v for k, v in dynamic_settings(config, restore).items() if v is not None}
    dcs = {**settings, "postgresql": {**settings["postgresql"], "use_pg_rewind": True, "use_slots": True}}
    section: dict = {
        "dcs": dcs,
        "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
        "pg_hba": pg_hba(config),
    }
    if config.restore and restore and not config.standby:
        plan = config.restore
        recovery = {"restore_command": restore.archive_get(), "recovery_target_timeline": "latest"}
        if plan.target_time:
            recovery |= {"recovery_target_time": postgres_time(plan.target_time), "recovery_target_inclusive": "true"}
        elif plan.from_snapshot:
            recovery["recovery_target"] = "immediate"
        recovery["recovery_target_action"] = "promote"
        section["method"] = "kuberds_restore"
        section["kuberds_restore"] = {
            # Patroni splits the command with shlex: a time target contains a space.
            "command": shlex.join(
                restore.restore(
                    pod.data_dir, plan.snapshot_set, postgres_time(plan.target_time) if plan.target_time else None
                )
            ),
            "no_params": True,
            "recovery_conf": recovery,
        }
    return section


def restapi_section(pod: Pod, credentials: Credentials, api_ca: Path | None) -> dict:
    """Patroni's REST API. Probes and members read without credentials; switchover, restart
    and reload need them (the NetworkPolicy also admits only peers and the operator). With
    `api_ca` (the server's CA, present when kuberds issued the certificate), it is served over
    TLS with the member's certificate, and members check each other's against that CA."""
    section: dict = {"listen": f"{pod.listen_address}:{pod.agent_port}",
                     "connect_address": f"{pod.ip}:{pod.agent_port}"}  # fmt: skip
    if credentials.api_password:
        section["authentication"] = {"username": AGENT_API_USER, "password": credentials.api_password}
    if api_ca:
        certificate, key = served_files(pod)
        section |= {"certfile": str(certificate), "keyfile": str(key), "cafile": str(api_ca)}
    return section


def configuration(config: AgentConfig, pod: Pod, credentials: Credentials, *, own: Commands | None,
                  restore: Commands | None, api_ca: Path | None = None) -> dict:  # fmt: skip
    port = pod.engine_port or config.port
    parameters = {**config.parameters, **managed_parameters(config, pod, own)}
    if config.tls:
        parameters.setdefault("ssl_min_protocol_version", "TLSv1.2")  # TLSv1.3 if the user says so
    postgresql: dict = {
        "listen": f"{pod.listen_address}:{port}",
        "connect_address": f"{pod.ip}:{port}",
        "data_dir": str(pod.data_dir),
        "bin_dir": str(pod.bin_dir),
        "pgpass": str(pod.run_dir / "pgpass"),
        # Patroni's own connections as the superuser go over the socket: the network refuses it.
        "use_unix_socket": True,
        "authentication": {
            "superuser": {"username": SUPERUSER, "password": credentials.superuser_password},
            "replication": {
                "username": REPLICATION_USER,
                "password": credentials.replication_password,
                **peer_tls(config),
            },
            "rewind": {"username": REWIND_USER, "password": credentials.rewind_password, **peer_tls(config)}
            if credentials.rewind_password
            else {"username": SUPERUSER, "password": credentials.superuser_password},
        },
        "parameters": parameters,
        "pg_hba": pg_hba(config),
        "use_pg_rewind": True,
        "remove_data_directory_on_rewind_failure": True,
        "remove_data_directory_on_diverged_timelines": True,
        "create_replica_methods": ["basebackup"],
        "basebackup": [{"checkpoint": "fast"}],
    }
    if own and config.backup and config.backup.retention_days > 0:
        # A new standby restores the newest backup and catches up from the archive, sparing
        # the primary a full copy; basebackup remains the fallback.
        postgresql["create_replica_methods"] = ["pgbackrest", "basebackup"]
        postgresql["pgbackrest"] = {"command": own.replica_restore(pod.data_dir), "keep_data": True,
                                    "no_params": True}  # fmt: skip
    if config.standby and restore:
        # Seeding a replica: the source's newest backup, as a standby (the standby cluster's
        # restore_command then replays the source's archive).
        postgresql[SEED_METHOD] = {"command": restore.replica_restore(pod.data_dir), "keep_data": True,
                                   "no_params": True}  # fmt: skip
    if config.standby:
        # The replica's leader logs in to the source with the source's replication login (the
        # pod has it); the source's endpoint is reached by its Service name, which its
        # certificate carries, so it is verified by name where the source's CA is known.
        postgresql["authentication"]["replication"] |= standby_tls(config, pod)
        # Patroni's replication connections to this member itself go over the socket, where
        # those TLS settings (for the source) do not apply.
        postgresql["use_unix_socket_repl"] = True
    if own:
        store = config.backup.repository.store if config.backup else None
        probe = pgbackrest.store_address(store) if store else None
        postgresql["recovery_conf"] = {"restore_command": own.archive_get(probe)}
    return {
        "scope": config.scope,
        "name": pod.name,
        "log": {"level": "INFO", "format": "%(asctime)s patroni %(levelname)s: %(message)s"},
        "restapi": restapi_section(pod, credentials, api_ca),
        # Members reach each other's API by pod address, which no certificate names: Patroni's
        # client then checks the CA (restapi.cafile) and not the name ("insecure" means that).
        **({"ctl": {"insecure": True}} if api_ca else {}),
        "kubernetes": {
            "namespace": config.namespace,
            "labels": dict(config.labels),
            "scope_label": config.scope_label,
            "role_label": config.role_label,
            "pod_ip": pod.ip,
            "ports": [{"name": "postgres", "port": port}],
            "use_endpoints": False,
            "bypass_api_service": False,
        },
        "bootstrap": bootstrap_section(config, pod, restore),
        "postgresql": postgresql,
        "watchdog": {"mode": "off"},  # no /dev/watchdog in a pod; the lease ttl bounds split brain
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }
