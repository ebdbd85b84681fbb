"""Runs a DBInstance's members as local processes: the real agent, Patroni, PostgreSQL and
pgBackRest, with the real API server as Patroni's DCS.

Each member has a pod object (from the operator's own StatefulSet template, bound to a kwok
node in its zone) that Patroni labels and annotates, and the agent authenticates with the
agent ServiceAccount's token, so the operator's RBAC for the agent is what is exercised.
The agent.json each member reads is built by the operator's own builder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import psutil
import psycopg
import yaml

from kuberds.agent.postgres.patroni_api import api_context
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.builders import certificates
from kuberds.builders.dbcluster import STRICT_FROM
from kuberds.builders.dbinstance import instance_server
from kuberds.builders.meta import Owner
from kuberds.builders.rbac import agent_rbac, snapshot_grant
from kuberds.builders.server import ReplicaOf
from kuberds.builders.settings import backup_plan, settings_config_map
from kuberds.builders.statefulset import stateful_set
from kuberds.config import OperatorConfig
from kuberds.contract.settings import AgentConfig, RestorePlan, StandbySource
from kuberds.engines.postgres import POSTGRES
from kuberds.operations import agents
from tests.support.kube import ROOT, Cluster, free_port, token_kubeconfig, wait_for
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS
from tests.support.writer import Writer

ZONES = ("kwok-zone-a", "kwok-zone-b", "kwok-zone-c")
BUCKET = "backups"


@dataclass
class Member:
    index: int
    name: str
    workdir: Path
    pg_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    api_ca: Path | None = None  # the HA API is served over TLS, verified with this CA

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data" / "pgdata"

    @property
    def log(self) -> Path:
        return self.workdir / "agent.log"

    def patroni(self, path: str = "/patroni", method: str = "GET", body: dict | None = None) -> dict | None:
        data = json.dumps(body).encode() if body is not None else None
        scheme = "https" if self.api_ca else "http"
        request = urllib.request.Request(f"{scheme}://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        context = api_context(self.api_ca) if self.api_ca else None
        try:
            with urllib.request.urlopen(request, timeout=3, context=context) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            text = error.read()
        except OSError:
            return None
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {"text": text.decode(errors="replace")}

    def role(self) -> str | None:
        state = self.patroni() or {}
        return state.get("role") if state.get("state") == "running" else None

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> list[psutil.Process]:
        """The agent, Patroni, and the postmaster with its children (Patroni detaches the
        postmaster, so it is found through its pid file, not as a child)."""
        found: dict[int, psutil.Process] = {}
        roots = [self.process.pid] if self.process else []
        if (pid := self.postmaster_pid()) is not None:
            roots.append(pid)
        for pid in roots:
            try:
                root = psutil.Process(pid)
                for process in (root, *root.children(recursive=True)):
                    found[process.pid] = process
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


class LocalServer:
    """One DBInstance's members on this host. Use as a context manager."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, workdir: Path, s3: SeaweedFS | None,
                 *, multi_az: bool = True, spec: dict | None = None, restore: RestorePlan | None = None,
                 restore_cipher: str | None = None, standby: StandbySource | None = None,
                 credentials_of: LocalServer | None = None, members: int | None = None):  # fmt: skip
        """`standby`: a read replica following that source; `credentials_of`: the server whose
        database passwords this one holds (a replica's are copies of its source's); `members`:
        three or more make a DBCluster's shape (strict synchronous commit)."""
        self.cluster, self.namespace, self.name, self.s3 = cluster, namespace, name, s3
        self.workdir = workdir
        self.tls_dir = workdir / "tls"
        body = {"engine": "postgres", "multiAZ": multi_az, "masterUsername": "app", "databaseName": "app",
                **(spec or {})}  # fmt: skip
        if s3:
            body.setdefault("backup", {})["objectStore"] = {
                "bucket": BUCKET, "endpoint": s3.endpoint, "credentialsSecretName": "s3", "verifyTLS": False,
            }  # fmt: skip
        self.spec = parse(DBInstanceSpec, body)
        # The DBInstance object exists (DBSnapshots name it; its uid keys the repository path),
        # with automation paused: here the test, not the operator, runs the members.
        self.uid = self._create_instance({**body, "automationPaused": True})
        self.owner = Owner("DBInstance", name, namespace, self.uid)
        # The local gateway is reached by IP, which pgBackRest cannot verify (it matches DNS
        # names only); the e2e suite verifies its in-cluster one by its Service name.
        self.backup = backup_plan(self.owner, self.spec, self.spec.backup.object_store)
        self.restore = restore
        self.restore_cipher = restore_cipher
        self.master_password = secrets.token_urlsafe(16)
        self.superuser_password = secrets.token_urlsafe(16)
        self.api_password = secrets.token_urlsafe(16)
        self.proxy_password = secrets.token_urlsafe(16)
        if credentials_of:
            self.master_password = credentials_of.master_password
            self.superuser_password = credentials_of.superuser_password
            self.proxy_password = credentials_of.proxy_password
        self.cipher_pass = secrets.token_urlsafe(24)
        count = members or (2 if multi_az else 1)
        self.members = [Member(i, f"{name}-{i}", workdir / f"{name}-{i}") for i in range(count)]
        self.server = instance_server(self.owner, self.spec, POSTGRES, OperatorConfig(), claim_size="1Gi",
                                      backup=self.backup, restore=restore)  # fmt: skip
        if count >= STRICT_FROM:  # what builders.dbcluster makes of a cluster of this size
            self.server = replace(self.server, replicas=count, synchronous=True, synchronous_strict=True)
        if standby:
            self.server = replace(self.server, standby=standby, replica_of=ReplicaOf(f"{standby.host}:{standby.port}"))
        if self.server.issues_certificate:  # as in a pod: the agent serves its HA API over TLS
            for member in self.members:
                member.api_ca = self.tls_dir / "ca.crt"

    # -- setup

    def _create_instance(self, spec: dict) -> str:
        api = kubernetes.client.CustomObjectsApi(self.cluster.client())
        created = api.create_namespaced_custom_object("kuberds.io", "v1alpha1", self.namespace, "dbinstances", {
            "apiVersion": "kuberds.io/v1alpha1", "kind": "DBInstance",
            "metadata": {"name": self.name}, "spec": {**spec, "skipFinalSnapshot": True},
        })  # fmt: skip
        return created["metadata"]["uid"]

    def __enter__(self) -> LocalServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self._kubernetes_objects()
        self._issue_certificate()
        self.kubeconfig = self._agent_kubeconfig()
        for member in self.members:
            self.start(member)
        return self

    def __exit__(self, *exc: object) -> None:
        for member in self.members:
            self.stop(member, hard=True)

    def _kubernetes_objects(self) -> None:
        """The agent's ServiceAccount/Role/RoleBinding and one pod per member, as the operator
        would have made them (RBAC) and the StatefulSet controller (pods)."""
        objects = agent_rbac(self.server)
        template = stateful_set(self.server)["spec"]["template"]
        for member in self.members:
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**template["metadata"], "name": member.name, "namespace": self.namespace},
                "spec": {**template["spec"], "nodeName": ZONES[member.index % len(ZONES)],
                         "affinity": None, "topologySpreadConstraints": None},
            }  # fmt: skip
            pod["spec"] = {k: v for k, v in pod["spec"].items() if v is not None}
            # The StatefulSet controller would mount the member's claim here.
            pod["spec"]["volumes"] = [*pod["spec"]["volumes"], {"name": "data", "emptyDir": {}}]
            objects.append(pod)
        for obj in objects:
            obj["metadata"]["namespace"] = self.namespace
            obj["metadata"].pop("ownerReferences", None)
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))

    def grant_snapshots(self, *snapshots: str) -> None:
        """What the operator's DBSnapshot handler does: lets this server's agent write the
        status of these snapshots (and of no other)."""
        objects = snapshot_grant(self.server.owner, list(snapshots))
        for obj in objects:
            obj["metadata"]["namespace"] = self.namespace
            obj["metadata"].pop("ownerReferences", None)
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))

    def _agent_kubeconfig(self) -> Path:
        path = token_kubeconfig(self.cluster, f"{self.name}-agent", self.namespace,
                                self.workdir / f"{self.name}-kubeconfig", "agent")  # fmt: skip
        os.chown(path, *_postgres_ids())  # Patroni, as postgres, reads it too
        return path

    def agent_json(self) -> str:
        """What the operator's settings ConfigMap would hold, with the TLS directory (a
        mounted Secret in a pod) pointing at this server's certificate files."""
        config = AgentConfig.from_json(settings_config_map(self.server)["data"]["agent.json"])
        if config.tls:
            ca_file = str(self.tls_dir / "ca.crt") if config.tls.ca_file else None
            config = replace(config, tls=replace(config.tls, directory=str(self.tls_dir), ca_file=ca_file))
        return config.to_json()

    def _issue_certificate(self) -> None:
        """As the operator would (its CA, a served certificate), for the name tests connect to."""
        now = datetime.now(UTC)
        ca = certificates.new_ca(f"{self.name} test CA", now)
        served = certificates.server_certificate(ca, ["localhost"], now)
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        for file, text in (("ca.crt", ca.certificate), ("tls.crt", served.certificate), ("tls.key", served.key)):
            (self.tls_dir / file).write_text(text)
        (self.tls_dir / "tls.key").chmod(0o600)

    def environment(self, member: Member) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "POD_NAME": member.name,
            "POD_NAMESPACE": self.namespace,
            "POD_IP": "127.0.0.1",
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERDS_KUBE_CONTEXT": "agent",
            "KUBERDS_CONFIG_DIR": str(member.workdir / "config"),
            "KUBERDS_DATA_DIR": str(member.data_dir),
            "KUBERDS_RUN_DIR": str(member.workdir / "run"),
            "KUBERDS_LISTEN_ADDRESS": "127.0.0.1",
            "KUBERDS_ENGINE_PORT": str(member.pg_port),
            "KUBERDS_AGENT_PORT": str(member.api_port),
            "KUBERDS_METRICS_PORT": str(member.metrics_port),
            "KUBERDS_ENGINE_USER": "postgres",
            "KUBERDS_MASTER_PASSWORD": self.master_password,
            "KUBERDS_SUPERUSER_PASSWORD": self.superuser_password,
            "KUBERDS_REPLICATION_PASSWORD": self.superuser_password + "-r",
            "KUBERDS_AGENT_API_PASSWORD": self.api_password,
            "KUBERDS_REWIND_PASSWORD": self.superuser_password + "-w",
            "KUBERDS_PROXY_PASSWORD": self.proxy_password,
            "PYTHONPATH": str(ROOT / "operator"),
        }
        if self.s3:
            env |= {"KUBERDS_BACKUP_ACCESS_KEY_ID": ACCESS_KEY, "KUBERDS_BACKUP_SECRET_ACCESS_KEY": SECRET_KEY,
                    "KUBERDS_BACKUP_CIPHER_PASS": self.cipher_pass}  # fmt: skip
        if self.restore_cipher:
            env["KUBERDS_RESTORE_CIPHER_PASS"] = self.restore_cipher
        return env

    # -- members

    def start(self, member: Member) -> None:
        config = member.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        os.chmod(member.workdir, 0o755)
        (config / "agent.json").write_text(self.agent_json())
        member.process = subprocess.Popen(
            [sys.executable, "-m", "kuberds", "agent", "postgres"],
            env=self.environment(member), stdout=member.log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self, member: Member, hard: bool = False) -> None:
        if member.process is None:
            return
        if hard:
            for process in member.processes():
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            member.process.wait(timeout=30)
        else:
            member.process.terminate()
            member.process.wait(timeout=90)
        member.process = None

    def signal_all(self, member: Member, sig: signal.Signals) -> None:
        for process in member.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)

    # -- observing

    def primary(self, timeout: float = 120) -> Member:
        def find() -> Member | None:
            leaders = [m for m in self.members if m.process and m.role() in ("master", "primary")]
            return leaders[0] if len(leaders) == 1 else None

        return wait_for(find, timeout=timeout, interval=0.5, what=f"{self.name}: one running primary\n{self.logs()}")

    def leader(self, timeout: float = 120) -> Member:
        """A read replica's leader (Patroni's standby leader), or its primary once promoted."""

        def find() -> Member | None:
            roles = ("standby_leader", "master", "primary")
            leaders = [m for m in self.members if m.process and (m.patroni() or {}).get("role") in roles]
            return leaders[0] if len(leaders) == 1 else None

        return wait_for(find, timeout=timeout, interval=0.5, what=f"{self.name}: its leader\n{self.logs()}")

    def switchover(self, old: Member, new: Member) -> str:
        """The very request (and credentials) the operator sends before replacing a primary."""
        # The test certificate names localhost (a pod's names its DNS name under the headless Service).
        tls = agents.AgentTls(old.api_ca.read_text(), "localhost") if old.api_ca else None
        return agents.send("127.0.0.1", old.api_port, POSTGRES.switchover(old.name, new.name), self.api_password,
                           tls=tls)  # fmt: skip

    def wait_streaming(self, timeout: float = 180) -> None:
        """Every member running; each standby streaming from the primary (and sync for Multi-AZ)."""

        def ready() -> bool:
            cluster = self.members[0].patroni("/cluster") or self.members[-1].patroni("/cluster") or {}
            states = [m.get("state") for m in cluster.get("members", [])]
            return (
                len(states) == len(self.members)
                and all(s in ("running", "streaming") for s in states)
                and (len(self.members) == 1 or any(m.get("role") == "sync_standby" for m in cluster["members"]))
            )

        wait_for(ready, timeout=timeout, interval=1, what=f"{self.name}: all members streaming\n{self.logs()}")

    def connect(self, member: Member | None = None, **kwargs) -> psycopg.Connection:
        member = member or self.primary()
        return psycopg.connect(host="127.0.0.1", port=member.pg_port, user="app", password=self.master_password,
                               dbname="app", connect_timeout=3, **kwargs)  # fmt: skip

    def superuser(self, member: Member) -> psycopg.Connection:
        """On the member's socket: the superuser is refused over the network."""
        return psycopg.connect(host=str(member.workdir / "run"), port=member.pg_port, user="postgres",
                               password=self.superuser_password, dbname="postgres", autocommit=True,
                               connect_timeout=3)  # fmt: skip

    def agent_status(self, member: Member) -> dict:
        pod = kubernetes.client.CoreV1Api(self.cluster.client()).read_namespaced_pod(member.name, self.namespace)
        return json.loads((pod.metadata.annotations or {}).get("kuberds.io/agent-status", "{}"))

    def archive_now(self) -> None:
        """Closes the current WAL segment and waits until it is in the repository."""
        with self.superuser(self.primary()) as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]

            def archived() -> bool:
                row = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                return row[0] is not None and row[0] >= segment

            wait_for(archived, timeout=600, interval=1, what=f"segment {segment} archived")

    def writer(self, first_id: int = 1) -> Writer:
        """A writer inserting through every member (it finds the primary), not started yet."""
        writer = Writer([("127.0.0.1", m.pg_port) for m in self.members], self.master_password, first_id=first_id)
        writer.prepare()
        return writer

    def logs(self) -> str:
        return "\n".join(f"--- {m.name}\n{m.log_tail()}" for m in self.members)


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid
