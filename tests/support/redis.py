"""Redis members on this host for the data-plane tests: each a real `kuberds agent redis`
(redis-server as the `redis` user) with the rights the operator gives its agents, deciding
over a real Lease in the real API server, moving the role label on pod objects (on kwok
nodes) that the primary endpoint would select; and a writer that finds the primary as that
endpoint does (the pod labelled primary) and records what was acknowledged."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import kubernetes
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import CacheClusterSpec
from kuberds.builders import cache as build
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.environment import BACKUP_STORE, RESTORE_STORE
from kuberds.contract.redis import RedisAgentConfig
from kuberds.contract.settings import RestorePlan
from kuberds.engines import cache_engine_for
from tests.support import tls as local_tls
from tests.support.kube import Cluster, token_kubeconfig, wait_for
from tests.support.members import LocalMember, LocalMembers

ZONES = ("kwok-zone-a", "kwok-zone-b", "kwok-zone-c")


@dataclass(frozen=True)
class StoreAccess:
    """What the agents' env carries from the store's Secrets (the pods get them by reference)."""

    access_key: str
    secret_key: str
    passphrase: str
    ca_bundle: str | None = None

    def env(self) -> dict[str, str]:
        return {f"{store.access_key.env}": self.access_key for store in (BACKUP_STORE, RESTORE_STORE)} | {
            f"{store.secret_key.env}": self.secret_key for store in (BACKUP_STORE, RESTORE_STORE)} | {
            f"{store.cipher_pass.env}": self.passphrase for store in (BACKUP_STORE, RESTORE_STORE)}  # fmt: skip


class LocalRedis(LocalMembers):
    """A Redis CacheCluster's members on this host. Use as a context manager."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, workdir: Path, replicas: int = 2,
                 users: dict[str, tuple[str, str]] | None = None, snapshots: dict | None = None,
                 store: StoreAccess | None = None, restore: RestorePlan | None = None,
                 tls: dict | None = None, automatic_failover: bool = True):  # fmt: skip
        """`users`: ACL users of the spec, name → (access rules, password), each password in a
        Secret NAME-PASSWORD as a user would keep it. `snapshots`: the spec's snapshots (its
        objectStore's keys and CA, and the passphrase, in `store`); `restore`: the plan the
        operator hands member 0 of a cluster made from a snapshot (read with `store` too).
        `tls`: the spec's (off unless given), its certificate issued here as the operator would."""
        self.cluster, self.namespace, self.name, self.workdir = cluster, namespace, name, workdir
        self.users = users or {}
        acl = [{"name": user, "access": access, "passwordSecretName": f"{user}-password"}
               for user, (access, _) in self.users.items()]  # fmt: skip
        body = {"engine": "redis", "replicas": replicas, "automaticFailover": automatic_failover,
                **({"auth": {"users": acl}} if acl else {}), **({"snapshots": snapshots} if snapshots else {}),
                "tls": tls or {"enabled": False}}  # fmt: skip
        spec = parse(CacheClusterSpec, body)
        # With snapshots the CacheCluster object exists (DBSnapshots name it; its uid keys the
        # repository path), paused: here the test, not an operator that may run, runs the members.
        uid = (
            self._create_object(cluster, namespace, name, body) if snapshots else "00000000-0000-4000-8000-0000000000cd"
        )
        owner = Owner("CacheCluster", name, namespace, uid)
        self.store = store
        self.cache = build.Cache(owner, spec, cache_engine_for("redis"), OperatorConfig(),
                                 store_ca=store.ca_bundle if store else None, restore=restore)  # fmt: skip
        self.members = [LocalMember(i, f"{name}-{i}", workdir / f"{name}-{i}") for i in range(replicas + 1)]
        self.password = secrets.token_urlsafe(16)
        self.admin_password = secrets.token_urlsafe(16)
        self.core = kubernetes.client.CoreV1Api(cluster.client())

    @staticmethod
    def _create_object(cluster: Cluster, namespace: str, name: str, spec: dict) -> str:
        body = {"apiVersion": "kuberds.io/v1alpha1", "kind": "CacheCluster", "metadata": {"name": name},
                "spec": {**spec, "automationPaused": True}}  # fmt: skip
        objects = kubernetes.client.CustomObjectsApi(cluster.client())
        created = objects.create_namespaced_custom_object("kuberds.io", "v1alpha1", namespace, "cacheclusters", body)
        return created["metadata"]["uid"]

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    def __enter__(self) -> LocalRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if self.cache.tls_secret:
            local_tls.issue(self.tls_dir, build.dns_names(self.cache))
        objects = [o for o in build.cache_objects(self.cache) if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
        objects += [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{user}-password"},
                     "stringData": {"password": password}} for user, (_, password) in self.users.items()]  # fmt: skip
        template = build.stateful_set(self.cache)["spec"]["template"]
        for member in self.members:  # the pods the StatefulSet would make, for the role labels
            objects.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": member.name, "labels": template["metadata"]["labels"]},
                            "spec": {"nodeName": ZONES[member.ordinal % 3], "containers": [
                                {"name": "redis", "image": "kuberds/redis:test"}]}})  # fmt: skip
        for obj in objects:
            obj["metadata"]["namespace"] = self.namespace
            obj["metadata"].pop("ownerReferences", None)
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))
        self.kubeconfig = token_kubeconfig(self.cluster, f"{self.name}-agent", self.namespace,
                                           self.workdir / "kubeconfig", "agent")  # fmt: skip
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
        agent_json = RedisAgentConfig.from_json(build.settings_config_map(self.cache)["data"]["agent.json"])
        if agent_json.tls is not None:  # the files where this host keeps them
            agent_json = replace(agent_json, tls=replace(agent_json.tls, directory=str(self.tls_dir),
                                                         ca_file=str(self.tls_dir / "ca.crt")))  # fmt: skip
        (config / "agent.json").write_text(agent_json.to_json())
        env = {
            **self.pod_env(member, "redis", "KUBERDS_REDIS_PEERS"),
            "KUBERDS_CACHE_PASSWORD": self.password,
            "KUBERDS_CACHE_ADMIN_PASSWORD": self.admin_password,
            **(self.store.env() if self.store else {}),
        }
        self.run_agent(member, "redis", env)

    def client(self, member: LocalMember, timeout: float = 1.0, user: str | None = None,
               password: str | None = None, tls: bool | None = None) -> redis.Redis:  # fmt: skip
        """`tls`: speak TLS (verifying against the cluster's CA); by default when the port is TLS only."""
        tls = (self.cache.tls_port == self.cache.port) if tls is None else tls
        options = {"ssl": True, "ssl_ca_certs": str(self.tls_dir / "ca.crt"), "ssl_cert_reqs": "required",
                   "ssl_check_hostname": False} if tls else {}  # fmt: skip
        # No retries of its own: a failed command goes back to the label at once (what is measured
        # is the failover, not the client library's retry policy).
        return redis.Redis(host="127.0.0.1", port=member.port, username=user, password=password or self.password,
                           socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
                           retry=Retry(NoBackoff(), 0), **options)  # fmt: skip

    def set_password(self, user: str, password: str) -> None:
        self.core.patch_namespaced_secret(f"{user}-password", self.namespace, {"stringData": {"password": password}})

    def replication(self, member: LocalMember) -> dict:
        """INFO replication of a member; empty while it does not answer."""
        with contextlib.suppress(redis.RedisError, OSError):
            return self.client(member).info("replication")
        return {}

    def lease_holder(self) -> str | None:
        lease = kubernetes.client.CoordinationV1Api(self.cluster.client()).read_namespaced_lease(
            f"{self.name}-leader", self.namespace)  # fmt: skip
        return lease.spec.holder_identity

    def primary(self, timeout: float = 60) -> LocalMember:
        return wait_for(self.labelled_primary, timeout=timeout, what="one member labelled primary")

    def wait_replicas(self, count: int, timeout: float = 60) -> None:
        def streaming() -> bool:
            primary = self.labelled_primary()
            with contextlib.suppress(redis.RedisError):
                info = self.client(primary).info("replication") if primary else {}
                return int(info.get("connected_slaves", 0)) >= count and all(
                    info[f"slave{i}"]["state"] == "online" for i in range(count))  # fmt: skip
            return False

        wait_for(streaming, timeout=timeout, what=f"{count} replicas streaming")


@dataclass
class Acknowledged:
    key: str
    at: float
    replicated: bool  # WAIT said every replica has it


class Writer:
    """Writes keys through whatever the primary endpoint selects (the labelled pod), one at a
    time; a failed write is retried on the next key after a new look at the label."""

    def __init__(self, local: LocalRedis, wait_every: int = 5):
        self.local, self.wait_every = local, wait_every
        self.acknowledged: list[Acknowledged] = []
        self.errors = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        replicas = len(self.local.members) - 1
        target, client, i = None, None, 0
        while not self.stopping.is_set():
            if client is None:
                with contextlib.suppress(Exception):
                    target = self.local.labelled_primary()
                client = self.local.client(target, timeout=0.5) if target else None
                if client is None:
                    time.sleep(0.05)
                    continue
            key = f"w{i}"
            try:
                client.set(key, str(i))
                replicated = False
                if i % self.wait_every == 0:
                    replicated = client.execute_command("WAIT", str(replicas), "300") >= replicas
                self.acknowledged.append(Acknowledged(key, time.monotonic(), replicated))
                i += 1
            except (redis.RedisError, OSError):
                self.errors += 1
                client = None
                i += 1
                time.sleep(0.05)

    def first_write_after(self, moment: float) -> float | None:
        return next((a.at - moment for a in self.acknowledged if a.at > moment), None)
