"""MariaDB members on this host for the data-plane tests: each a real `kuberds agent mariadb`
(mariadbd as the `mysql` user) with the rights the engine gives its agents, deciding over a
real Lease in the real API server, moving the role label on pod objects (on kwok nodes) that
the writer endpoint would select; and a writer that finds the primary as that endpoint does
and records every commit the server acknowledged."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import pymysql
import yaml

from kuberds.contract import ROLE_LABEL
from kuberds.contract.environment import API_PASSWORD, MASTER_PASSWORD, REPLICATION_PASSWORD, SUPERUSER_PASSWORD
from kuberds.contract.mariadb import AGENT_USER, PEERS_ENV, lease_name
from kuberds.contract.settings import AgentConfig, BackupPlan, RestorePlan
from kuberds.engines.base import AgentRequest
from kuberds.engines.mariadb import MARIADB
from kuberds.operations import agents
from tests.support.kube import Cluster, token_kubeconfig, wait_for
from tests.support.members import LocalMember, LocalMembers
from tests.support.redis import StoreAccess

ZONES = ("kwok-zone-a", "kwok-zone-b", "kwok-zone-c")
MASTER = "admin"


class LocalMariaDB(LocalMembers):
    """A MariaDB server's members on this host. Use as a context manager."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, workdir: Path, instances: int = 2,
                 synchronous: bool = True, database: str = "shop", backup: BackupPlan | None = None,
                 restore: RestorePlan | None = None, store: StoreAccess | None = None):  # fmt: skip
        """`backup`/`restore`: agent.json's plans (the store's keys and the passphrase in `store`)."""
        self.cluster, self.namespace, self.name, self.workdir = cluster, namespace, name, workdir
        self.members = [LocalMember(i, f"{name}-{i}", workdir / f"{name}-{i}") for i in range(instances)]
        self.settings = AgentConfig(scope=name, namespace=namespace, port=3306, engine_version="10.11",
                                    instances=instances, scope_label="kuberds.io/dbinstance", labels={},
                                    role_label=ROLE_LABEL, synchronous=synchronous, master_username=MASTER,
                                    database_name=database, kind="DBInstance", backup=backup,
                                    restore=restore)  # fmt: skip
        self.store = store
        self.database = database
        self.password = secrets.token_urlsafe(16)
        self.agent_password = secrets.token_urlsafe(16)
        self.replication_password = secrets.token_urlsafe(16)
        self.api_password = secrets.token_urlsafe(16)
        self.core = kubernetes.client.CoreV1Api(cluster.client())

    def __enter__(self) -> LocalMariaDB:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        account = f"{self.name}-agent"
        objects: list[dict] = [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": account},
             "rules": MARIADB.agent_rules(self.name, [m.name for m in self.members])},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": account},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
             "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": self.namespace}]},
        ]  # fmt: skip
        for member in self.members:  # the pods the StatefulSet would make, for the role labels
            objects.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": member.name, "labels": {"kuberds.io/dbinstance": self.name}},
                            "spec": {"nodeName": ZONES[member.ordinal % 3], "containers": [
                                {"name": "mariadb", "image": "kuberds/mariadb:test"}]}})  # fmt: skip
        for obj in objects:
            obj["metadata"]["namespace"] = self.namespace
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))
        self.kubeconfig = token_kubeconfig(self.cluster, account, self.namespace, self.workdir / "kubeconfig", "agent")
        for member in self.members:
            self.start(member)
        return self

    def __exit__(self, *exc: object) -> None:
        for member in self.members:
            self.kill(member)

    def start(self, member: LocalMember) -> None:
        config = member.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        member.workdir.chmod(0o755)
        (config / "agent.json").write_text(self.settings.to_json())
        env = {**self.pod_env(member, "mysql", PEERS_ENV), MASTER_PASSWORD.env: self.password,
               SUPERUSER_PASSWORD.env: self.agent_password, REPLICATION_PASSWORD.env: self.replication_password,
               API_PASSWORD.env: self.api_password, **(self.store.env() if self.store else {})}  # fmt: skip
        self.run_agent(member, "mariadb", env)

    def connect(self, member: LocalMember, timeout: float = 2.0, user: str = MASTER,
                password: str | None = None, database: str | None = None) -> pymysql.Connection:  # fmt: skip
        return pymysql.connect(host="127.0.0.1", port=member.port, user=user, password=password or self.password,
                               database=database, connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout, autocommit=True)  # fmt: skip

    def agent_connect(self, member: LocalMember) -> pymysql.Connection:
        return self.connect(member, user=AGENT_USER, password=self.agent_password)

    def query(self, member: LocalMember, statement: str, args: tuple = (), **connect: object) -> list[tuple]:
        with self.connect(member, **connect) as connection, connection.cursor() as cursor:
            cursor.execute(statement, args or None)
            return list(cursor.fetchall())

    def lease_holder(self) -> str | None:
        with contextlib.suppress(kubernetes.client.ApiException):
            lease = kubernetes.client.CoordinationV1Api(self.cluster.client()).read_namespaced_lease(
                lease_name(self.name), self.namespace)  # fmt: skip
            return lease.spec.holder_identity
        return None

    def primary(self, timeout: float = 90) -> LocalMember:
        return wait_for(self.labelled_primary, timeout=timeout, what=f"one member labelled primary\n{self.logs()}")

    def replica_status(self, member: LocalMember) -> dict:
        try:
            with self.agent_connect(member) as connection, connection.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute("SHOW SLAVE STATUS")
                return cursor.fetchone() or {}
        except (pymysql.Error, OSError):
            return {}

    def wait_replicas(self, timeout: float = 90) -> None:
        """Every member but the primary replicating from it, both threads running."""

        def streaming() -> bool:
            primary = self.labelled_primary()
            if primary is None:
                return False
            states = [self.replica_status(m) for m in self.members if m is not primary and m.process]
            return all(s.get("Slave_IO_Running") == "Yes" and s.get("Slave_SQL_Running") == "Yes" for s in states)

        wait_for(streaming, timeout=timeout, what=f"the replicas streaming\n{self.logs()}")

    def ask(self, member: LocalMember, request: AgentRequest, password: str | None = None) -> str:
        """Sends an operator's request to a member's agent API (raises AgentError on a refusal)."""
        return agents.send("127.0.0.1", member.agent_port, request, password or self.api_password)


@dataclass
class Commit:
    key: int
    at: float
    member: str  # the member that acknowledged it


class Writer:
    """Inserts rows through whatever the writer endpoint selects (the labelled pod), one
    transaction at a time; a failed one is not acknowledged, and the next goes after a new
    look at the label."""

    def __init__(self, local: LocalMariaDB, table: str = "orders"):
        self.local, self.table = local, table
        self.acknowledged: list[Commit] = []
        self.errors = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)

    def _run(self) -> None:
        connection, key, target = None, 0, None
        while not self.stopping.is_set():
            if connection is None:
                with contextlib.suppress(Exception):
                    target = self.local.labelled_primary()
                    connection = self.local.connect(target, timeout=3, database=self.local.database) if target else None
                if connection is None:
                    time.sleep(0.05)
                    continue
            key += 1
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"INSERT INTO {self.table} (id, note) VALUES (%s, %s)", (key, f"row {key}"))
                self.acknowledged.append(Commit(key, time.monotonic(), target.name))
            except (pymysql.Error, OSError):
                self.errors += 1
                with contextlib.suppress(Exception):
                    connection.close()
                connection = None
                time.sleep(0.05)

    def first_commit_after(self, moment: float, member: str | None = None) -> float | None:
        """Seconds from `moment` to the first commit after it (acknowledged by `member`, when given)."""
        return next((c.at - moment for c in self.acknowledged if c.at > moment and member in (None, c.member)), None)
