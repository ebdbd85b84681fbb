"""MariaDB: what the API offers, and what its pods look like to Kubernetes. The agent side
(mariadbd, the HA decision over a Lease) is kuberds.agent.mariadb; the parameters users may
set and the sizing from the instance class are kuberds.engines.mariadb_parameters.

Everything MySQL-family that differs between MariaDB and MySQL (GTID format, semi-sync
variable names, clone) lives in those modules, so a MySQL engine would add its own beside
them the day one can be built and tested here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kuberds.api.classes import Size
from kuberds.contract import PRIMARY, REPLICA
from kuberds.contract.layouts import MARIADB as LAYOUT
from kuberds.contract.layouts import PodLayout
from kuberds.contract.mariadb import AGENT_USER, REPLICATION_USER, lease_name
from kuberds.engines import mariadb_parameters as tuning
from kuberds.engines.base import AgentRequest, EngineInfo
from kuberds.engines.parameters import Parameter
from kuberds.quantity import to_bytes

INFO = EngineInfo(
    name="mariadb",
    family="database",
    versions=("10.11",),
    default_port=3306,
    # rdsadmin: users coming from RDS expect it refused; mariadb.sys owns the system views.
    reserved_usernames=("root", "mysql", "mariadb.sys", "rdsadmin", AGENT_USER, REPLICATION_USER),
    max_username_length=32,
    reserved_databases=("mysql", "information_schema", "performance_schema", "sys"),
    managed_parameters=tuning.MANAGED,
    allowed_parameters=tuple(sorted(tuning.ALLOWED)),
)


@dataclass(frozen=True)
class MariaDB:
    info: EngineInfo = INFO
    layout: PodLayout = LAYOUT
    role_label_values: dict[str, str] = field(default_factory=lambda: {PRIMARY: PRIMARY, REPLICA: REPLICA})
    proxy: None = None  # Debian ships no ProxySQL or MaxScale
    backups: bool = True  # mariadb-backup, binlog shipping, DBSnapshots (kuberds.agent.mariadb.backing)
    read_replicas: bool = False
    leader_kind: str = "Lease"  # the agents' (kuberds.agent.lease)
    clusters: bool = False  # a DBInstance of up to three members; DBClusters are postgres's

    @property
    def name(self) -> str:
        return self.info.name

    def parameters(self, size: Size, user: dict[str, str], volume: str | None = None) -> dict[str, str]:
        """RDS's sizing from the instance class (buffer pool, connections), the redo log from
        the volume, the user's judged values on top, as mariadbd reads them."""
        return tuning.parameters(to_bytes(size.memory), user, to_bytes(volume) if volume else None)

    def max_connections(self, size: Size, user: dict[str, str]) -> int:
        return tuning.max_connections(to_bytes(size.memory), user)

    def parameter_problems(self, user: Mapping[str, str]) -> list[str]:
        return tuning.problems(user)

    def allowed_parameters(self) -> list[Parameter]:
        return sorted(tuning.ALLOWED.values(), key=lambda p: p.name.lower())

    def restart_member(self) -> AgentRequest:
        return AgentRequest("POST", "/restart", {})

    def promote_replica(self) -> AgentRequest:
        return AgentRequest("POST", "/promote", {})

    def probes(self, api_tls: bool) -> dict[str, dict]:
        # Ready: the primary holding the lease, or a replica applying from it (the agent knows);
        # alive: mariadbd runs, whatever the lease or the API server says. Crash recovery, a
        # first install and a restore (before the API is served) may take long: the startup
        # probe holds liveness off for up to an hour, as PostgreSQL's does.
        scheme = "HTTPS" if api_tls else "HTTP"  # the kubelet does not verify the certificate

        def http(path: str, period: int, failures: int) -> dict:
            return {"httpGet": {"path": path, "port": self.layout.agent_port, "scheme": scheme},
                    "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}  # fmt: skip

        return {"startupProbe": http("/alive", 5, 720), "livenessProbe": http("/alive", 10, 3),
                "readinessProbe": http("/ready", 1, 2)}  # fmt: skip

    def switchover(self, leader: str, candidate: str) -> AgentRequest:
        return AgentRequest("POST", "/switchover", {"leader": leader, "candidate": candidate})

    def agent_rules(self, server: str, pods: list[str]) -> list[dict]:
        """The members' agents keep the leader Lease (`create` cannot be limited by name:
        Kubernetes checks names only of existing objects), the role labels and reports of the
        server's own pods, and read its DBSnapshots; nothing else."""
        return [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
             "resourceNames": [lease_name(server)]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"], "resourceNames": list(pods)},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["kuberds.io"], "resources": ["dbsnapshots"], "verbs": ["get", "list", "watch"]},
        ]  # fmt: skip


ENGINE = MariaDB()
MARIADB = ENGINE
