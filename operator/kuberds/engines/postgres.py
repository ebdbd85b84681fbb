"""PostgreSQL: what the API offers and what its pods look like. The agent side (Patroni,
pgBackRest) is kuberds.agent.postgres."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kuberds.api.classes import Size
from kuberds.contract import PRIMARY, REPLICA
from kuberds.contract.layouts import POSTGRES as LAYOUT
from kuberds.contract.layouts import PodLayout
from kuberds.contract.proxy import CONSOLE_USER, PROXY_USER
from kuberds.engines import parameters as allow
from kuberds.engines.base import AgentRequest, EngineInfo
from kuberds.engines.pgbouncer import PgBouncer
from kuberds.quantity import to_bytes

MiB = 2**20
# PostgreSQL 15's parameters users may set: hack/postgres-parameters.py writes the file.
PARAMETERS = allow.table(json.loads(Path(__file__).with_name("postgres_parameters.json").read_text()))

INFO = EngineInfo(
    name="postgres",
    family="database",
    versions=("15",),
    default_port=5432,
    reserved_usernames=("postgres", "replicator", "rewind", PROXY_USER, CONSOLE_USER),
    reserved_username_prefixes=("pg_",),  # PostgreSQL refuses new roles named pg_*
    reserved_databases=("postgres", "template0", "template1"),
    allowed_parameters=tuple(sorted(PARAMETERS)),
    proxy="pgbouncer",
    managed_parameters=(
        "archive_command", "archive_mode", "restore_command", "recovery_target_time", "primary_conninfo",
        "synchronous_standby_names", "hba_file", "data_directory", "port", "listen_addresses", "ssl",
        "ssl_cert_file", "ssl_key_file",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Postgres:
    info: EngineInfo = INFO
    layout: PodLayout = LAYOUT
    # Patroni 3.0 calls the leader "master" in its role label and has no setting to rename it.
    role_label_values: dict[str, str] = field(default_factory=lambda: {PRIMARY: "master", REPLICA: "replica"})
    proxy: PgBouncer = field(default_factory=PgBouncer)
    backups: bool = True
    read_replicas: bool = True
    leader_kind: str = "ConfigMap"  # Patroni's leader object
    clusters: bool = True

    @property
    def name(self) -> str:
        return self.info.name

    def parameters(self, size: Size, user: dict[str, str], volume: str | None = None) -> dict[str, str]:
        """Sizing from the instance class, as RDS's default parameter group does, and WAL
        from the volume: between checkpoints WAL may grow to max_wal_size, which must leave
        the data room on a small volume (PostgreSQL's 1GB default would fill a 1Gi one)."""
        memory = to_bytes(size.memory)
        derived = {
            "shared_buffers": f"{memory // 4 // MiB}MB",
            "effective_cache_size": f"{memory * 3 // 4 // MiB}MB",
            # RDS: LEAST({DBInstanceClassMemory/9531392}, 5000)
            "max_connections": str(max(25, min(memory // 9531392, 5000))),
            "maintenance_work_mem": f"{max(64, memory // 16 // MiB)}MB",
            "work_mem": "4MB",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "max_replication_slots": "10",
            "wal_log_hints": "on",  # pg_rewind needs it to rejoin an old primary
            "hot_standby": "on",
            "password_encryption": "scram-sha-256",
            "log_min_duration_statement": "1000",
        }
        if volume:
            max_wal = min(2048, max(64, to_bytes(volume) // 4 // MiB))  # a quarter, RDS's 2GB at most
            derived |= {"max_wal_size": f"{max_wal}MB", "min_wal_size": f"{max(32, min(80, max_wal // 2))}MB"}
        return {**derived, **user}

    def max_connections(self, size: Size, user: dict[str, str]) -> int:
        return int(self.parameters(size, user)["max_connections"])

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]:
        return allow.problems(PARAMETERS, user, self.name)

    def allowed_parameters(self) -> list[allow.Parameter]:
        return sorted(PARAMETERS.values(), key=lambda p: p.name.lower())

    def probes(self, api_tls: bool) -> dict[str, dict]:
        scheme = "HTTPS" if api_tls else "HTTP"  # the kubelet does not verify the certificate

        def http(path: str, period: int, failures: int) -> dict:
            return {
                "httpGet": {"path": path, "port": self.layout.agent_port, "scheme": scheme},
                "periodSeconds": period,
                "timeoutSeconds": 5,
                "failureThreshold": failures,
            }

        return {
            # Bootstrap and restores can take long: the startup probe holds liveness off.
            "startupProbe": http("/liveness", 10, 360),
            # Patroni's /liveness answers from the local HA loop, not from the API server.
            "livenessProbe": http("/liveness", 10, 6),
            "readinessProbe": http("/readiness", 5, 3),
        }

    def switchover(self, leader: str, candidate: str) -> AgentRequest:
        """Patroni's planned switchover: it waits for the candidate to catch up, demotes the
        leader cleanly and answers once the candidate is the new leader."""
        return AgentRequest("POST", "/switchover", {"leader": leader, "candidate": candidate})

    def restart_member(self) -> AgentRequest:
        """Patroni restarts PostgreSQL on that member (a replica: its walreceiver reconnects)."""
        return AgentRequest("POST", "/restart", {})

    def promote_replica(self) -> AgentRequest:
        """A standby cluster without standby_cluster in its settings is an ordinary one:
        Patroni promotes its standby leader at once (the agent would do the same once the
        kubelet hands it the new agent.json; this does not wait for that)."""
        return AgentRequest("PATCH", "/config", {"standby_cluster": None})

    def agent_rules(self, server: str, pods: list[str]) -> list[dict]:
        """Patroni's Kubernetes DCS keeps leader, config, failover and sync state in ConfigMaps
        named after the server, and role labels on the server's pods; the agent reports on its
        pod and serves DBSnapshots of its server (their status: builders.rbac.snapshot_grant).
        Every write is limited to those names (`create` cannot be: Kubernetes checks names
        only for existing objects), so neither the settings ConfigMap nor another server's
        pods and ConfigMaps can be changed."""
        dcs = [f"{server}-{kind}" for kind in ("leader", "config", "failover", "sync")]
        return [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update", "patch", "delete"],
             "resourceNames": dcs},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch", "update"], "resourceNames": list(pods)},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["kuberds.io"], "resources": ["dbsnapshots"], "verbs": ["get", "list", "watch"]},
        ]  # fmt: skip


ENGINE = Postgres()
POSTGRES = ENGINE
