"""The Redis member's supervisor: redis-server as a child process, the HA loop (observe, decide,
act: kuberds.agent.redis.decide), the role label the endpoints select on, readiness, metrics,
and the report on the pod. redis-server exiting ends the agent (the kubelet restarts the
container, which starts empty and is never a candidate until it has synced)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from kuberds.agent import report as reporting
from kuberds.agent.health import serve_health
from kuberds.agent.kube import AgentKube, KubeConflict, KubeError
from kuberds.agent.lease import LeaderLease
from kuberds.agent.peers import Address, Peers, parse_given
from kuberds.agent.pod import Pod
from kuberds.agent.processes import OsUser
from kuberds.agent.redis.config import ADMIN_USER, REPLICATION_USER, redis_conf
from kuberds.agent.redis.decide import MASTER, REPLICA, Action, Member, Seen, decide
from kuberds.agent.redis.metrics import serve_metrics
from kuberds.agent.redis.snapshots import discard_rdb, restore_if_first, serve_snapshots, taker
from kuberds.agent.redis.users import AclUsers
from kuberds.agent.roles import RoleLabels
from kuberds.contract import PRIMARY, SETTINGS_FILE, environment
from kuberds.contract import REPLICA as REPLICA_ROLE
from kuberds.contract.redis import RedisAgentConfig, lease_name, tls_port_beside
from kuberds.contract.report import AgentReport

log = logging.getLogger("kuberds.agent")

LOOP_SECONDS = 1.0
TIMEOUT = 0.5  # a member that does not answer INFO within this is not reachable this loop
PEERS_ENV = "KUBERDS_REDIS_PEERS"  # tests: name=host:port,… (in a pod: the pods' IPs, read through the API)
REPLICATION_RIGHTS = ("resetchannels", "-@all", "+psync", "+sync", "+replconf", "+ping")
HANDOVER_SECONDS = 5  # a clean stop pauses writes this long at most while the replicas catch up
KUBE_TIMEOUT = 2.0  # every API call: a hanging API server must not stretch a loop past the lease


def peer_addresses(config: RedisAgentConfig, env: dict[str, str]) -> dict[str, Address]:
    given = env.get(PEERS_ENV)
    if given:
        return parse_given(given)
    return {f"{config.cluster}-{i}": Address(config.host(i), config.port) for i in range(config.members)}


def replication(client: redis.Redis) -> dict | None:
    try:
        return client.info("replication")
    except (redis.RedisError, OSError):
        return None


class RedisAgent:
    def __init__(self, pod: Pod, kube: AgentKube | None, env: dict[str, str]):
        self.pod, self.kube = pod, kube
        self.config = RedisAgentConfig.from_json((pod.config_dir / SETTINGS_FILE).read_text())
        self.password = env.get(environment.CACHE_PASSWORD.env, "")
        self.admin_password = env.get(environment.CACHE_ADMIN_PASSWORD.env, "")
        given = peer_addresses(self.config, env)
        self.me = pod.name
        self.port = pod.engine_port or given[self.me].port
        self.peers = Peers(self.me, given, kube, pod.namespace, pod.ip, self.port, by_pod_ip=PEERS_ENV not in env)
        self.addresses, self.ordinals = self.peers.addresses, self.peers.ordinals
        self.clients = {name: self._client(a.host, a.port) for name, a in self.addresses.items() if name != self.me}
        self.min_replicas: int | None = None
        self.local = self._client("127.0.0.1", self.port)
        self.lease = LeaderLease(kube, pod.namespace, lease_name(self.config.cluster), self.me,
                                 self.config.lease_seconds, self._controller()) if kube else None  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.failures = 0
        self.renewed_at = 0.0
        self.took_lease = False
        self.replicas_may_sync = False  # this member's Redis has the replication user
        self.labels = RoleLabels(kube, pod.namespace, pod.name)
        self.answering: list[str] = []  # the peers that answered in the last observation
        self.last: Action | None = None
        self.state: dict = {}
        self.published: dict = {}
        self.users = AclUsers(kube, pod)
        self.members: list[Member] = []  # me and the peers as last observed (the snapshot taker is chosen from them)
        self.snapshots = serve_snapshots(self.config, kube, pod, env)

    def _controller(self) -> dict | None:
        """This pod's controller (the StatefulSet): the Lease is made owned by it, so it goes
        with the cluster."""
        try:
            pod = self.kube.get("Pod", self.pod.namespace, self.me) or {}
        except KubeError:
            return None
        return next((r for r in pod.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")), None)

    def _client(self, host: str, port: int) -> redis.Redis:
        # No retries: a member that does not answer at once is not reachable this loop (a
        # frozen one would otherwise cost every loop seconds).
        return redis.Redis(host=host, port=port, username=ADMIN_USER, password=self.admin_password,
                           socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True,
                           retry=Retry(NoBackoff(), 0), **self._tls_options())  # fmt: skip

    def _tls_options(self) -> dict:
        """TLS where the port is TLS only: the chain checked against the cluster's CA, not the
        name (members are reached by their pods' IPs)."""
        tls = self.config.tls
        if tls is None or not tls.require:
            return {}
        return {"ssl": True, "ssl_ca_certs": tls.ca_file or f"{tls.directory}/ca.crt", "ssl_cert_reqs": "required",
                "ssl_check_hostname": False}  # fmt: skip

    def _replication_port(self, port: int) -> int:  # replicas connect where TLS is served (tls-replication)
        tls = self.config.tls
        return tls_port_beside(port) if tls is not None and not tls.require else port

    # ------------------------------------------------------------ observe

    def _member(self, name: str, info: dict | None) -> Member:
        if info is None:
            return Member(name, self.ordinals[name])
        role = MASTER if info.get("role") == "master" else REPLICA
        offset = int(info.get("master_repl_offset") or 0)
        return Member(name, self.ordinals[name], role, offset, has_data=offset > 0)

    def _following(self, info: dict | None) -> str | None:
        if not info or info.get("role") != "slave":
            return None
        source = Address(str(info.get("master_host")), int(info.get("master_port") or 0))
        return next((name for name, address in self.addresses.items()
                     if Address(address.host, self._replication_port(address.port)) == source), None)  # fmt: skip

    def observe(self) -> Seen:
        mine = replication(self.local)
        self.failures = 0 if mine is not None else self.failures + 1
        self.state = mine or {}
        peers = tuple(self._member(name, replication(client)) for name, client in self.clients.items())
        self.answering = [p.name for p in peers if p.role is not None]
        for peer in peers:
            moved = self.peers.look_up(peer.name, answered=peer.role is not None)
            if moved is not None:
                self.clients[peer.name] = self._client(moved.host, moved.port)
        lease = None
        if self.lease is not None:
            try:
                lease = self.lease.observe()
            except KubeError as error:
                log.warning("reading the lease: %s", error)
        renewed_ago = time.monotonic() - self.renewed_at if self.renewed_at else 0.0
        self.members = [self._member(self.me, mine), *peers]
        return Seen(self._member(self.me, mine), self._following(mine), lease, peers, self.failures, renewed_ago,
                    fence_after=self.config.lease_seconds - 1, took_lease=self.took_lease,
                    automatic_failover=self.config.automatic_failover)  # fmt: skip

    # ------------------------------------------------------------ act

    def perform(self, action: Action) -> None:
        try:
            getattr(self, "_" + action.kind)(action)
        except KubeConflict as error:
            log.info("%s: another member moved the lease first (%s)", action.kind, error)
        except (KubeError, redis.RedisError, OSError) as error:
            log.warning("%s failed: %s", action.kind, error)

    def _let_replicas_sync(self) -> None:
        """Only a member that took the lease has the replication user (one restarted empty has
        none: a replica reconnecting copies nothing). Tried on each renewal until made: a
        promotion can fail once the lease is taken (Redis loading an RDB refuses REPLICAOF)."""
        if not self.replicas_may_sync:
            self.local.execute_command("ACL", "SETUSER", REPLICATION_USER, "reset", "on", f">{self.admin_password}",
                                       *REPLICATION_RIGHTS)  # fmt: skip
            self.replicas_may_sync = True

    def _renew(self, action: Action) -> None:
        asked = time.monotonic()  # the Lease's renewTime is stamped before the request goes out
        self.lease.renew()
        self.renewed_at = asked
        if self.state.get("role") == "master":
            self._let_replicas_sync()
        self.labels.refresh(PRIMARY)
        self._keep_min_replicas()

    def _keep_min_replicas(self) -> None:
        """Writes wait for a replica only while one is streaming: with every replica gone (its
        node lost, its pod restarting) the primary keeps taking writes, as ElastiCache does,
        instead of refusing them until a replica is back; and a primary whose replicas leave it
        for a new primary stops at once (its agent lags a loop behind at most)."""
        online = sum(1 for k, v in self.state.items() if k.startswith("slave") and isinstance(v, dict)
                     and v.get("state") == "online")  # fmt: skip
        wanted = 1 if online else 0
        if wanted != self.min_replicas:
            self.local.config_set("min-replicas-to-write", wanted)
            self.min_replicas = wanted

    def _promote(self, action: Action) -> None:
        asked = time.monotonic()
        self.lease.take()  # first: of two candidates, only the one that took the lease goes on
        self.took_lease, self.renewed_at = True, asked
        self.local.execute_command("REPLICAOF", "NO", "ONE")
        self._let_replicas_sync()
        for name in self.addresses:  # the endpoint leaves the old primary first, then comes here
            if name != self.me:
                self.labels.set_on(name, REPLICA_ROLE)
        self.labels.set(PRIMARY)
        me = self.addresses[self.me]
        for name in self.answering:  # the replicas that answer follow at once (their agents agree)
            try:
                self.clients[name].execute_command("REPLICAOF", me.host, str(self._replication_port(me.port)))
            except (redis.RedisError, OSError) as error:
                log.info("pointing %s at the new primary: %s", name, error)

    def _follow(self, action: Action) -> None:
        address = self.addresses[action.target]
        self.local.execute_command("ACL", "DELUSER", REPLICATION_USER)  # no replica may copy a stale primary
        self.replicas_may_sync = False
        self.local.execute_command("REPLICAOF", address.host, str(self._replication_port(address.port)))
        self.labels.set(REPLICA_ROLE)

    _demote = _follow

    def _release(self, action: Action) -> None:
        self.lease.release()
        self.took_lease = False
        with contextlib.suppress(redis.RedisError, OSError):
            self.local.execute_command("ACL", "DELUSER", REPLICATION_USER)
            self.replicas_may_sync = False
        self.labels.set(REPLICA_ROLE)

    def _fence(self, action: Action) -> None:
        # Until past the next loop, however long the API server makes it wait.
        self.local.execute_command("CLIENT", "PAUSE", str(int((LOOP_SECONDS + KUBE_TIMEOUT) * 1000 * 1.5)), "WRITE")

    def _wait(self, action: Action) -> None:
        if self.state.get("role") == "slave" and self.labels.labelled != REPLICA_ROLE:
            self.labels.set(REPLICA_ROLE)

    # ------------------------------------------------------------ the loop

    def ready(self) -> bool:
        """The primary holding the lease, or a replica streaming from it."""
        if self.last is None:
            return False
        if self.last.kind == "renew":
            return True
        return self.state.get("role") == "slave" and self.state.get("master_link_status") == "up"

    def report(self) -> AgentReport:
        role = {"master": PRIMARY, "slave": REPLICA_ROLE}.get(self.state.get("role"))
        return AgentReport(role=role, state="running" if self.state else "starting",
                           doing=[self.last.reason] if self.last else [])  # fmt: skip

    def step(self) -> Action:
        if self.state:
            try:
                self.users.keep(self.local)
            except (KubeError, redis.RedisError, OSError) as error:
                log.warning("ACL users: %s", error)
        action = decide(self.observe())
        if self.last is None or action.reason != self.last.reason:
            log.info("decision: %s", action.reason)
        self.perform(action)
        self.last = action
        if self.kube is not None:
            self.published = reporting.publish(self.kube, self.pod.namespace, self.me, self.report(), self.published)
        return action

    def run(self, env: dict[str, str] | None = None) -> int:
        self.pod.run_dir.mkdir(parents=True, exist_ok=True)
        self.pod.data_dir.mkdir(parents=True, exist_ok=True)
        discard_rdb(self.pod.data_dir)  # an RDB left by a snapshot cut short must not be loaded
        if self.ordinals[self.me] == 0 and self.lease is not None:
            restore_if_first(self.config, self.lease, env or {}, self.pod.data_dir)
        user = OsUser(self.pod.engine_user, {"PATH": "/usr/bin:/bin"}, self.pod.data_dir)
        user.own(self.pod.run_dir, self.pod.data_dir)
        conf = self.pod.run_dir / "redis.conf"
        user.write_private(
            conf,
            redis_conf(
                self.config,
                password=self.password,
                admin_password=self.admin_password,
                listen=self.pod.listen_address,
                port=self.port,
                announce_ip=self.pod.ip,
                data_dir=str(self.pod.data_dir),
            ),
        )
        self.process = user.popen([str(Path(self.pod.bin_dir) / "redis-server"), str(conf)])
        serve_metrics(self)
        serve_health(self.pod.listen_address, self.pod.agent_port, lambda: self.process.poll() is None, self.ready)
        if self.snapshots is not None:
            taking = (lambda: self.local if self.state else None, lambda: taker(self.members), lambda: self.stopping)
            threading.Thread(target=self.snapshots.loop, args=taking, name="snapshots", daemon=True).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        while not self.stopping:
            if self.process.poll() is not None:
                log.error("redis-server exited with %s", self.process.returncode)
                if self.config.automatic_failover:  # else the lease waits for this member to come back
                    self._let_go()
                return 1
            self.step()
            time.sleep(LOOP_SECONDS)
        self._hand_over()
        self.process.terminate()
        self.process.wait(timeout=30)
        return 0

    def _let_go(self) -> None:
        if self.last is not None and self.last.kind in ("renew", "promote") and self.lease is not None:
            self.lease.let_go()

    def _hand_over(self) -> None:
        """A clean stop of the primary: writes paused, the replicas given time to have every
        write, then the lease let go, so the most advanced replica takes over within a loop."""
        if self.last is None or self.last.kind not in ("renew", "promote"):
            return
        try:
            self.local.execute_command("CLIENT", "PAUSE", str(HANDOVER_SECONDS * 1000), "WRITE")
            replicas = int(self.local.info("replication").get("connected_slaves") or 0)
            if replicas:
                self.local.execute_command("WAIT", str(replicas), str(HANDOVER_SECONDS * 1000 - 1000))
        except redis.RedisError as error:
            log.warning("handing over: %s", error)
        self._let_go()
        log.info("stopping: the lease is free for the replicas")

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True


def main(use_kubernetes: bool = True) -> int:
    from kuberds.contract.layouts import REDIS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    kube = AgentKube.from_environment(timeout=KUBE_TIMEOUT) if use_kubernetes else None
    env = dict(os.environ)
    return RedisAgent(Pod.from_environment(REDIS), kube, env).run(env)
