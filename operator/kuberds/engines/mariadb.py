"""MariaDB: what the API offers, and what its pods look like to Kubernetes. The agent side
(mariadbd, the HA decision over a Lease) is kuberds.agent.mariadb.

Not in ENGINE yet: the agent and its data-plane tests exist, the operator does not build
MariaDB servers yet, so `engine: mariadb` is still answered with EngineNotSupported. Everything
MySQL-family that differs between MariaDB and MySQL (GTID format, semi-sync names, clone)
lives in the agent package's modules, so a MySQL engine would add its own beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kuberds.contract import PRIMARY, REPLICA
from kuberds.contract.layouts import MARIADB as LAYOUT
from kuberds.contract.layouts import PodLayout
from kuberds.contract.mariadb import AGENT_USER, REPLICATION_USER, lease_name
from kuberds.engines.base import AgentRequest, EngineInfo

INFO = EngineInfo(
    name="mariadb",
    family="database",
    versions=("10.11",),
    default_port=3306,
    # rdsadmin: users coming from RDS expect it refused; mariadb.sys owns the system views.
    reserved_usernames=("root", "mysql", "mariadb.sys", "rdsadmin", AGENT_USER, REPLICATION_USER),
    max_username_length=32,
    reserved_databases=("mysql", "information_schema", "performance_schema", "sys"),
    managed_parameters=("log_bin", "gtid_mode", "server_id", "bind-address", "datadir", "port"),
)


@dataclass(frozen=True)
class MariaDB:
    info: EngineInfo = INFO
    layout: PodLayout = LAYOUT
    role_label_values: dict[str, str] = field(default_factory=lambda: {PRIMARY: PRIMARY, REPLICA: REPLICA})
    proxy: None = None  # Debian ships no ProxySQL or MaxScale

    @property
    def name(self) -> str:
        return self.info.name

    def probes(self, api_tls: bool) -> dict[str, dict]:
        # Ready: the primary holding the lease, or a replica applying from it (the agent knows);
        # alive: mariadbd runs, whatever the lease or the API server says. Crash recovery and a
        # first install may take long: the startup probe holds liveness off meanwhile.
        def http(path: str, period: int, failures: int) -> dict:
            return {"httpGet": {"path": path, "port": self.layout.agent_port}, "periodSeconds": period,
                    "timeoutSeconds": 2, "failureThreshold": failures}  # fmt: skip

        return {"startupProbe": http("/alive", 5, 120), "livenessProbe": http("/alive", 10, 3),
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


MARIADB = MariaDB()
