"""The MariaDB member's supervisor: mariadbd as a child process (installed on first start), the
HA loop (observe, decide, act: kuberds.agent.mariadb.decide) over the leader Lease, the role
label the writer and reader endpoints select on, readiness, and the report on the pod.

mariadbd exiting ends the agent (the kubelet restarts the container); it always starts
read-only with the semi-sync replica's crash recovery, so a commit that was never
acknowledged does not survive a crash, and the decision makes it primary only when it should.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pymysql

from kuberds.agent import report as reporting
from kuberds.agent.health import serve_health
from kuberds.agent.kube import AgentKube, KubeConflict, KubeError
from kuberds.agent.lease import LeaderLease
from kuberds.agent.mariadb import accounts
from kuberds.agent.mariadb.backing import ACCOUNTS_PENDING, Backing, BackupFigures, restore_if_empty
from kuberds.agent.mariadb.config import MariaDBConfig, Tls, render
from kuberds.agent.mariadb.decide import Action, Lease, Member, Seen, decide
from kuberds.agent.mariadb.gtid import GtidPos
from kuberds.agent.mariadb.handover import LOOP_SECONDS, Handover
from kuberds.agent.mariadb.metrics import serve_metrics
from kuberds.agent.mariadb.server import (
    TIMEOUT,
    LocalServer,
    ServerState,
    Sql,
    client_tls,
    member_tls,
    open_writes,
    replicate_from,
    run_unlogged,
    state,
)
from kuberds.agent.peers import Address, Peers, ordinal, parse_given
from kuberds.agent.pod import Pod
from kuberds.agent.roles import RoleLabels
from kuberds.agent.snapshots import Snapshots
from kuberds.contract import PRIMARY, SETTINGS_FILE, environment
from kuberds.contract import REPLICA as REPLICA_ROLE
from kuberds.contract.mariadb import AGENT_USER, PEERS_ENV, REPLICATION_USER, lease_name
from kuberds.contract.report import AgentReport
from kuberds.contract.settings import AgentConfig

log = logging.getLogger("kuberds.agent")

KUBE_TIMEOUT = 2.0  # every API call: a hanging API server must not stretch a loop past the lease
SINCE_ANNOTATION = "kuberds.io/gtid-since"  # the holder's executed GTIDs when it took the lease
STARTUP_SECONDS = 120  # mariadbd answering after its start (crash recovery included)
FAILURES = (pymysql.Error, OSError)


def peer_addresses(config: AgentConfig, env: dict[str, str]) -> dict[str, Address]:
    given = env.get(PEERS_ENV)
    if given:
        return parse_given(given)
    domain = f"{config.scope}-pods.{config.namespace}.svc"
    names = [f"{config.scope}-{i}" for i in range(config.instances)]
    return {name: Address(f"{name}.{domain}", config.port) for name in names}


class MariaDBAgent(Handover):
    def __init__(self, pod: Pod, kube: AgentKube | None, env: dict[str, str]):
        self.pod, self.kube, self.me = pod, kube, pod.name
        self.config = AgentConfig.from_json((pod.config_dir / SETTINGS_FILE).read_text())
        self.master_password = env.get(environment.MASTER_PASSWORD.env, "")
        self.agent_password = env.get(environment.SUPERUSER_PASSWORD.env, "")
        self.replication_password = env.get(environment.REPLICATION_PASSWORD.env, "")
        self.api_password = env.get(environment.API_PASSWORD.env) or None
        self.switchover_to: str | None = None  # a planned switchover the operator asked for
        given = peer_addresses(self.config, env)
        self.port = pod.engine_port or given[self.me].port
        self.peers = Peers(self.me, given, kube, pod.namespace, pod.ip, self.port, by_pod_ip=PEERS_ENV not in env)
        self.server = LocalServer(pod.bin_dir, pod.data_dir, pod.run_dir, pod.engine_user)
        self.remote = {name: self._sql(self.peers.addresses[name]) for name in self.peers.others()}
        lease_labels = {self.config.scope_label: self.config.scope, **self.config.labels}  # the operator watches it
        self.lease = LeaderLease(kube, pod.namespace, lease_name(self.config.scope), self.me, self.config.ha.ttl,
                                 self._controller(), lease_labels) if kube else None  # fmt: skip
        self.started_at = datetime.now(UTC)
        self.stopping = False
        self.failures = 0
        self.renewed_at = 0.0
        self.recovered = False  # restarted mariadbd with crash recovery to discard a tail
        self.labels = RoleLabels(kube, pod.namespace, pod.name)
        self.mine: ServerState | None = None
        self.last: Action | None = None
        self.published: dict = {}
        self.env = env
        self.work_dir = pod.data_dir.parent / "work"  # on the data volume: backups stage parts there
        snapshots = Snapshots(kube, self.config.namespace, self.config.scope, self.config.kind)
        self.backing = Backing(self.config, self.server, env, self.me, self.work_dir,
                               snapshots) if self.config.backup else None  # fmt: skip
        self.accounts_pending = self.work_dir / ACCOUNTS_PENDING  # restored: the source's accounts, made again

    @property
    def synchronous(self) -> bool:
        """Multi-AZ: commits wait for a replica's acknowledgement, never falling back."""
        return self.config.synchronous and self.config.instances > 1

    def _sql(self, address: Address) -> Sql:
        # A frozen peer accepts connections and never answers: it may cost a loop one timeout.
        return Sql(host=address.host, port=address.port, user=AGENT_USER, password=self.agent_password,
                   read_timeout=TIMEOUT, write_timeout=TIMEOUT, **client_tls(self.tls))  # fmt: skip

    @property
    def tls(self) -> Tls | None:
        return member_tls(self.config.tls)

    @property
    def api_certificate(self) -> tuple[str, str] | None:
        """The API is served over TLS when kuberds issued the certificate (the pod's probes then
        ask HTTPS, and the operator verifies it with the server's CA)."""
        tls, given = self.tls, self.config.tls
        if tls is None or given is None or not given.ca_file:
            return None
        return (tls.cert, tls.key) if Path(tls.cert).is_file() and Path(tls.key).is_file() else None

    def _controller(self) -> dict | None:
        try:
            pod = self.kube.get("Pod", self.pod.namespace, self.me) or {}
        except KubeError:
            return None
        return next((r for r in pod.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")), None)

    # ------------------------------------------------------------ observe

    def _member(self, name: str, seen: ServerState | None) -> Member:
        number = self.peers.ordinals[name]
        if seen is None:
            return Member(name, number, answers=False)
        following = self.peers.name_of(seen.source) if seen.source else None
        return Member(name, number, writable=seen.writable, executed=seen.executed, received=seen.received,
                      io_running=seen.io_running, sql_running=seen.sql_running, following=following,
                      io_error=seen.io_error, lag=seen.lag)  # fmt: skip

    def _read(self, sql: Sql) -> ServerState | None:
        try:
            return state(sql)
        except FAILURES:
            return None

    def observe(self) -> Seen:
        self.mine = self._read(self.server.sql)
        self.failures = 0 if self.mine is not None else self.failures + 1
        peers = []
        for name in self.peers.others():  # after this member's own: see decide.Seen
            seen = self._read(self.remote[name])
            moved = self.peers.look_up(name, answered=seen is not None)
            if moved is not None:
                self.remote[name] = self._sql(moved)
            peers.append(self._member(name, seen))
        renewed_ago = time.monotonic() - self.renewed_at if self.renewed_at else 0.0
        return Seen(self._member(self.me, self.mine), self._observe_lease(), tuple(peers), self.failures,
                    renewed_ago, took_lease=self._took_lease(), fence_after=self.config.ha.ttl - 1,
                    members_total=self.config.instances, acks=1 if self.synchronous else 0,
                    recovered=self.recovered, switchover_to=self.switchover_to)  # fmt: skip

    def _observe_lease(self) -> Lease | None:
        if self.lease is None:
            return Lease(self.me, True) if self.config.instances == 1 else None
        try:
            seen = self.lease.observe()
        except KubeError as error:
            log.warning("reading the lease: %s", error)
            return None
        since = self.lease.annotations().get(SINCE_ANNOTATION)
        return Lease(seen.holder, seen.fresh, seen.exists, GtidPos.parse(since) if since is not None else None)

    def _took_lease(self) -> bool:
        """The lease in this member's name was taken (or handed to it) during this run: a holder
        of the same name from before a restart is stale."""
        if self.lease is None:
            return True
        acquired = self.lease.acquired()
        return acquired is not None and acquired >= self.started_at

    # ------------------------------------------------------------ act

    def perform(self, action: Action) -> None:
        try:
            getattr(self, "_" + action.kind)(action)
        except KubeConflict as error:
            log.info("%s: another member moved the lease first (%s)", action.kind, error)
        except (KubeError, *FAILURES) as error:
            log.warning("%s failed: %s", action.kind, error)

    def _since(self) -> dict[str, str]:
        return {SINCE_ANNOTATION: str(self.mine.executed) if self.mine else ""}

    def _renew(self, action: Action) -> None:
        asked = time.monotonic()
        if self.lease is not None:
            self.lease.renew()
        self.renewed_at = asked
        if self.mine is not None and not self.mine.writable and not self.mine.sql_running:
            self._apply(action)  # a holder still applying its relay log (decide says so)
        if self.mine is None or not self.mine.writable:
            return  # the endpoint comes here once writes are open
        self.labels.refresh(PRIMARY)

    def _promote(self, action: Action) -> None:
        asked = time.monotonic()
        if self.lease is not None and self._holder() == self.me and self._took_lease():
            self.lease.renew()  # handed over, or held and lapsed while a loop was slow: fresh again
        elif self.lease is not None:
            self.lease.take(self._since())  # first: of two candidates only the one that took it goes on
        self.renewed_at = asked
        pending = self.accounts_pending.exists()
        bootstrap = None if self._bootstrapped() and not pending else accounts.bootstrap(
            self.config.master_username, self.master_password, self.config.database_name, self.replication_password,
            self.agent_password)  # fmt: skip
        open_writes(self.server.sql, self.synchronous, bootstrap)
        self.recovered = False
        if pending:
            self.accounts_pending.unlink()
        for name in self.peers.others():  # the endpoint leaves the old primary first, then comes here
            self.labels.set_on(name, REPLICA_ROLE)
        self.labels.set(PRIMARY)

    def _holder(self) -> str | None:
        return ((self.lease.read or {}).get("spec") or {}).get("holderIdentity")

    def _bootstrapped(self) -> bool:
        rows = self.server.sql.rows("SELECT 1 FROM mysql.user WHERE user = %s", (AGENT_USER,))
        return bool(rows)

    def _follow(self, action: Action) -> None:
        source = self.peers.addresses[action.target]
        tls = self.tls
        replicate_from(self.server.sql, source, REPLICATION_USER, self.replication_password, self.synchronous,
                       (tls.ca or "") if tls else None)  # fmt: skip
        self.labels.set(REPLICA_ROLE)

    def _demote(self, action: Action) -> None:
        self.server.sql.run("SET GLOBAL read_only = ON")
        self._follow(action)

    def _rejoin(self, action: Action) -> None:
        """A SIGKILL and a start: crash recovery as a semi-sync replica truncates the binlog to
        what the engine committed, dropping transactions that waited for an acknowledgement."""
        self.labels.set(REPLICA_ROLE)
        self.server.kill()
        self.server.start()
        self._wait_answering()
        self.recovered = True

    def _reseed(self, action: Action) -> None:
        # Re-seeding from a backup is not built yet: the member stays out, said in its report.
        self.server.sql.run("STOP SLAVE")
        self.labels.set(REPLICA_ROLE)

    def _errant(self, action: Action) -> None:
        self.server.sql.run("STOP SLAVE")
        self.labels.set(REPLICA_ROLE)

    def _fence(self, action: Action) -> None:
        self.server.sql.run("STOP SLAVE IO_THREAD")

    def _apply(self, action: Action) -> None:
        self.server.sql.run("START SLAVE SQL_THREAD")

    def _fence_writes(self, action: Action) -> None:
        self.server.sql.run("SET GLOBAL read_only = ON")

    def _release(self, action: Action) -> None:
        if self.lease is not None:
            self.lease.release()
        self.labels.set(REPLICA_ROLE)

    def _hand_over(self, action: Action) -> None:
        self.lease.hand_over(action.target, self._since())
        self.labels.set(REPLICA_ROLE)

    def _wait(self, action: Action) -> None:
        if self.mine is not None and self.mine.source is not None and self.labels.labelled != REPLICA_ROLE:
            self.labels.set(REPLICA_ROLE)

    # ------------------------------------------------------------ the loop

    def ready(self) -> bool:
        """The primary holding the lease, or a replica applying from it."""
        if self.last is None or self.mine is None:
            return False
        if self.last.kind == "renew":
            return self.mine.writable
        return self.mine.source is not None and self.mine.io_running and self.mine.sql_running

    def report(self) -> AgentReport:
        role = None
        if self.mine is not None:
            role = PRIMARY if self.mine.writable else REPLICA_ROLE
        figures = self.backing.figures if self.backing is not None else BackupFigures()
        volume_bytes, volume_free = reporting.volume_usage(self.pod.data_dir.parent)  # for storage autoscaling
        replica = self.mine if role == REPLICA_ROLE else None
        # A replica acknowledging commits (Multi-AZ's one standby then has every acknowledged one;
        # a switchover to it still waits until it applied them).
        acknowledging = replica.acknowledging and replica.io_running if replica and self.synchronous else None
        return AgentReport(role=role, state="running" if self.mine else "starting",
                           synchronous_standby=acknowledging, replica_lag_seconds=replica.lag if replica else None,
                           volume_bytes=volume_bytes, volume_free_bytes=volume_free,
                           api_tls=self.api_certificate is not None,
                           doing=[self.last.reason] if self.last else [], backup_healthy=figures.healthy,
                           backup_reason=figures.reason, backup_message=figures.message,
                           latest_restorable_time=figures.latest_restorable_time,
                           earliest_restorable_time=figures.earliest_restorable_time,
                           last_backup_time=figures.last_backup_time)  # fmt: skip

    def step(self) -> Action:
        action = decide(self.observe())
        if self.last is None or action.reason != self.last.reason:
            log.info("decision: %s", action.reason)
        self.perform(action)
        self.last = action
        if self.backing is not None:
            self.backing.on_loop(primary=action.kind == "renew" and self.mine is not None and self.mine.writable)
        if self.kube is not None:
            try:
                self.published = reporting.publish(self.kube, self.pod.namespace, self.me, self.report(),
                                                   self.published)  # fmt: skip
            except KubeError as error:
                log.warning("publishing the report: %s", error)
        return action

    def _my_cnf(self) -> str:
        return render(MariaDBConfig(
            server_id=ordinal(self.me) + 1, port=self.port, datadir=str(self.pod.data_dir),
            socket=str(self.server.socket), pid_file=str(self.pod.run_dir / "mysqld.pid"),
            tmpdir=str(self.pod.run_dir), files_dir=str(self.server.files_dir),
            bind_address=self.pod.listen_address, tls=self.tls,
            semi_sync=self.synchronous, members=self.config.instances, user_parameters=self.config.parameters,
        ))  # fmt: skip

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while self._read(self.server.sql) is None:
            if self.server.exit_code() is not None:
                raise RuntimeError(f"mariadbd exited with {self.server.exit_code()} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mariadbd did not answer within {STARTUP_SECONDS} s")
            time.sleep(0.2)

    def run(self) -> int:
        self.server.prepare(self._my_cnf())
        self.work_dir.mkdir(parents=True, exist_ok=True)
        restore_if_empty(self.config, self.lease, self.server, self.env, self._my_cnf(), self.work_dir,
                         ordinal(self.me))  # fmt: skip
        if not self.server.installed():
            self.server.install()
        self.server.start()
        self._wait_answering()
        run_unlogged(self.server.sql, accounts.hardening())
        serve_metrics(
            self.pod.listen_address, self.pod.metrics_port, self.server.own_connection(), self.pod.data_dir.parent
        )  # the mount, even before the data directory exists
        serve_health(self.pod.listen_address, self.pod.agent_port, lambda: self.server.exit_code() is None, self.ready,
                     {"/switchover": self.switch_over}, self.api_password, self.api_certificate)  # fmt: skip
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        while not self.stopping:
            if self.server.exit_code() is not None:
                log.error("mariadbd exited with %s", self.server.exit_code())
                self._let_go()
                return 1
            self.step()
            time.sleep(LOOP_SECONDS)
        self.hand_over_on_stop()
        self._let_go()
        return self.server.stop()

    def _let_go(self) -> None:
        if self.last is not None and self.last.kind in ("renew", "promote") and self.lease is not None:
            self.lease.let_go()

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True


def main(use_kubernetes: bool = True) -> int:
    from kuberds.contract.layouts import MARIADB

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    kube = AgentKube.from_environment(timeout=KUBE_TIMEOUT) if use_kubernetes else None
    env = dict(os.environ)
    return MariaDBAgent(Pod.from_environment(MARIADB), kube, env).run()
