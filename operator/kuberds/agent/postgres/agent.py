"""`kuberds agent postgres`: the PostgreSQL side of the runtime (kuberds.agent.runtime).

It writes Patroni's and pgBackRest's configuration, runs Patroni (which runs PostgreSQL
and owns every HA decision), observes Patroni, PostgreSQL and the repositories for the
decision step, performs its steps — master user and database, the repository stanza,
automated backups, DBSnapshots, pending restarts — and says what it sees in its report.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from kuberds.agent.decisions import Backoff, Observation, Step
from kuberds.agent.kube import KubeError
from kuberds.agent.load import CpuMeter
from kuberds.agent.pod import Pod
from kuberds.agent.postgres import database, patroni
from kuberds.agent.postgres.backups import PgBackRest, rfc3339
from kuberds.agent.postgres.database import Database, pgpass_line
from kuberds.agent.postgres.patroni import SUPERUSER
from kuberds.agent.postgres.patroni_api import ROLES, STANDBY_LEADER, PatroniApi
from kuberds.agent.postgres.tls import TlsFiles
from kuberds.agent.processes import OsUser
from kuberds.agent.report import AgentMetrics, volume_usage
from kuberds.agent.schedule import Window, archive_health
from kuberds.agent.snapshots import Snapshots
from kuberds.contract import PRIMARY, REPLICA, SETTINGS_FILE, environment
from kuberds.contract.environment import Credentials
from kuberds.contract.report import AgentReport
from kuberds.contract.settings import AgentConfig, BackupPlan
from kuberds.quantity import to_bytes

log = logging.getLogger("kuberds.agent")

HEARTBEAT_SECONDS = 5.0
AGENT_PGPASS = "agent.pgpass"  # Patroni keeps its own "pgpass" for replication and rewind
RUNNING = "running"
# Cluster-wide settings the primary's agent keeps current in Patroni's DCS.
HA_FIELDS = ("instances", "synchronous", "synchronous_strict", "ha", "standby")


class PostgresAgent:
    failures = (psycopg.Error, OSError, KubeError)

    def __init__(self, pod: Pod, credentials: Credentials, kube=None, backoff: Backoff | None = None):
        self.pod, self.credentials = pod, credentials
        self.config = AgentConfig.from_json((pod.config_dir / SETTINGS_FILE).read_text())
        self.port = pod.engine_port or self.config.port
        self.patroni_file = pod.run_dir / "patroni.yml"
        self.user = OsUser(pod.engine_user, self._environment(), pod.run_dir,
                           {"PGPASSFILE": str(pod.run_dir / AGENT_PGPASS)})  # fmt: skip
        self.database = Database(self.port, credentials.superuser_password, socket_dir=pod.run_dir)
        self.api = PatroniApi(pod.agent_port, credentials.api_password)
        self.metrics = AgentMetrics("postgres")
        self.cpu = CpuMeter()
        snapshots = Snapshots(kube, self.config.namespace, self.config.scope, self.config.kind)
        self.backups = PgBackRest(pod, self.port, self.config.backup, self.config.restore, credentials,
                                  self.user, self.metrics, snapshots, backoff or Backoff(),
                                  self.config.engine_version)  # fmt: skip
        self.tls = TlsFiles(pod, self.user)
        self.tls_reload_pending = False
        self.api_ca: Path | None = None  # decided once at start, like the pod's probes
        self.patroni: subprocess.Popen | None = None
        # Observed state carried between loops.
        self.accounts_ready = False
        self.was_standby = False
        self.archive_caught_up = True
        self.last_heartbeat = 0.0

    def _environment(self) -> dict[str, str]:
        """What Patroni, PostgreSQL and pgBackRest get: no secret (a backend inherits its
        postmaster's environment, and the master user must not read it); they find their
        credentials in files only they may read."""
        secrets = {var.env for var in environment.SECRET_VARS}
        env = {k: v for k, v in os.environ.items() if k not in secrets and not k.startswith("PGBACKREST_")}
        env["PGPASSFILE"] = str(self.pod.run_dir / "pgpass")
        env["HOME"] = str(self.pod.run_dir)
        return env

    # -- setup

    def prepare(self) -> None:
        pod = self.pod
        for path in (pod.run_dir, *self.backups.directories(), pod.data_dir.parent):
            path.mkdir(parents=True, exist_ok=True)
            self.user.own(path)
        # Private to the engine user; in a pod it is an emptyDir owned by root (fsGroup), which
        # the pod alone sees, and only its owner may chmod it.
        if os.geteuid() in (0, pod.run_dir.stat().st_uid):
            pod.run_dir.chmod(0o700)
        # The agent's own commands (pgBackRest's backups) log in as the superuser on the socket.
        self.user.write_private(pod.run_dir / AGENT_PGPASS, pgpass_line(SUPERUSER, self.credentials.superuser_password))
        self.backups.write_configuration()
        self.tls.install(self.config.tls)
        self.api_ca = self._api_ca()
        self.api = PatroniApi(pod.agent_port, self.credentials.api_password, self.api_ca)
        self.backups.write_restore_configuration()
        self._write_source_ca()
        self.write_patroni_configuration()

    def _write_source_ca(self) -> None:
        """A read replica verifies its source's certificate with the source's CA."""
        source = self.config.standby
        if source and source.ca_bundle:
            self.user.write_private(patroni.source_ca_file(self.pod), source.ca_bundle)

    def _api_ca(self) -> Path | None:
        """The server's CA when the HA API is served over TLS: kuberds issued the certificate
        (the operator's probes then ask HTTPS) and the pod has it. Kept for the pod's life
        even if client TLS is turned off: the probes change only with a new pod."""
        tls = self.config.tls
        ca_file = Path(tls.ca_file) if tls and tls.ca_file else None
        return ca_file if self.tls.installed and ca_file and ca_file.is_file() else None

    def served_config(self) -> AgentConfig:
        """The configuration as served: without TLS while its files are missing."""
        return self.config if self.tls.installed else replace(self.config, tls=None)

    def write_patroni_configuration(self) -> None:
        document = patroni.configuration(self.served_config(), self.pod, self.credentials, own=self.backups.own,
                                         restore=self.backups.source, api_ca=self.api_ca)  # fmt: skip
        if self.pod.kube_context:
            document["kubernetes"]["context"] = self.pod.kube_context
        self.user.write_private(self.patroni_file, json.dumps(document, indent=1))

    # -- Patroni

    def start(self) -> None:
        log.info("starting Patroni for member %s of %s", self.pod.name, self.config.scope)
        self.patroni = self.user.popen(["patroni", str(self.patroni_file)])

    def exit_code(self) -> int | None:
        return self.patroni.poll() if self.patroni else None

    def stop(self) -> int:
        """SIGTERM to Patroni: it stops PostgreSQL cleanly and releases the leader lease, so a
        standby takes over at once instead of after the lease's ttl."""
        self.database.close()
        if self.patroni and self.patroni.poll() is None:
            self.patroni.terminate()
            try:
                self.patroni.wait(timeout=50)
            except subprocess.TimeoutExpired:
                self.patroni.kill()
        return 0

    def reload(self) -> None:
        """The kubelet refreshes the mounted ConfigMap; new parameters go to Patroni by SIGHUP
        (Patroni reloads what it can and flags what needs a restart)."""
        fresh = AgentConfig.from_json((self.pod.config_dir / SETTINGS_FILE).read_text())
        if fresh.backup != self.config.backup and self.config.backup is not None and fresh.backup is not None:
            plan = kept_repository(self.config.backup, fresh.backup)
            self.config = replace(self.config, backup=plan)
            self.backups.replan(plan)
        if any(getattr(fresh, f) != getattr(self.config, f) for f in HA_FIELDS):
            source_changed = fresh.standby != self.config.standby
            self.config = replace(self.config, **{f: getattr(fresh, f) for f in HA_FIELDS})
            if source_changed:  # promoted, or the source's CA or TLS mode changed
                log.info("the source to follow changed (%s): reloading Patroni",
                         "none: promoting" if fresh.standby is None else fresh.standby.host)  # fmt: skip
                self._write_source_ca()
                self._reload_patroni()
        if fresh.tls != self.config.tls:
            log.info("client TLS changed (%s): reloading Patroni", fresh.tls)
            self.config = replace(self.config, tls=fresh.tls)
            self.tls.install(self.config.tls)
            self._reload_patroni()
        elif self.tls.install(self.config.tls):
            log.info("the served certificate changed: PostgreSQL and Patroni's API reload it")
            self.tls_reload_pending = True
            if self.api_ca:
                self._reload_patroni()  # Patroni rereads its API certificate on SIGHUP
        if self.tls_reload_pending:
            self._reload_postgres()
        if fresh.parameters == self.config.parameters:
            return
        log.info("parameters changed: reloading Patroni")
        self.config = replace(self.config, parameters=fresh.parameters)
        self._reload_patroni()

    def _reload_patroni(self) -> None:
        """Patroni rewrites postgresql.conf and pg_hba.conf from its file and reloads."""
        self.write_patroni_configuration()
        if self.patroni and self.patroni.poll() is None:
            self.patroni.send_signal(signal.SIGHUP)

    def _reload_postgres(self) -> None:
        """Same paths, new files: only PostgreSQL's own reload rereads them."""
        try:
            database.reload_configuration(self.database)
            self.tls_reload_pending = False
        except (psycopg.Error, OSError) as error:
            log.info("reloading PostgreSQL for the new certificate: %s; will retry", error)

    def replaced_soon(self) -> bool:
        """agent.json is for another instance class than this pod's memory limit: the
        operator's rolling update will replace the pod."""
        wanted, have = self.config.memory_limit, self.pod.memory_limit_bytes
        return bool(wanted and have and to_bytes(wanted) != have)

    def _ha_settings_current(self) -> bool:
        current = self.api.settings()
        if current is None:
            return True  # unknown: nothing to do this time
        return patroni.settings_current(current, self._wanted_settings(current))

    def _wanted_settings(self, current: dict) -> dict:
        return patroni.settings_to_send(self.config, self.backups.source, current)

    # -- observe

    def observe(self) -> Observation:
        state = self.api.state()
        role, pg_state = ROLES.get(state.get("role")), state.get("state")
        leader = role == PRIMARY
        standby_leader = state.get("role") == STANDBY_LEADER
        if state and not leader:  # Patroni said so (a 2 s hiccup of its API is not a demotion)
            self.accounts_ready = False
            if pg_state == RUNNING:
                self.was_standby = True
        elif pg_state == RUNNING and self.was_standby:
            self.was_standby, self.archive_caught_up = False, False
        cluster = self.api.cluster() if state.get("pending_restart") and leader else {}
        plan = self.config.backup
        if plan and leader and pg_state == RUNNING:
            self.backups.refresh()
        return Observation(
            now=datetime.now(UTC),
            role=role,
            state=pg_state,
            pending_restart=bool(state.get("pending_restart")),
            replaced_soon=self.replaced_soon(),
            replicas_pending_restart=any(
                m.get("pending_restart") for m in cluster.get("members", []) if m.get("name") != self.pod.name
            ),
            backups_configured=plan is not None,
            repository_ready=self.backups.stanza_ready,
            backups=self.backups.schedule_view(),
            backup_running=self.backups.worker.busy,
            retention_days=plan.retention_days if plan else 0,
            window=Window.parse(plan.window) if plan else Window.parse("03:00-03:30"),
            accounts_ready=self.accounts_ready,
            archive_caught_up=self.archive_caught_up,
            ha_settings_current=self._ha_settings_current() if leader or standby_leader else True,
            standby_leader=standby_leader,
            following_source=self.config.standby is not None,
            snapshots=self.backups.snapshot_requests() if plan and leader else [],
        )

    # -- act

    def perform(self, step: Step) -> bool | None:
        action = {
            "update-ha-settings": self._update_ha_settings,
            "ensure-accounts": self._ensure_accounts,
            "prepare-repository": self.backups.prepare_repository,
            "archive-catch-up": self._archive_catch_up,
            "backup": self.backups.backup,
            "snapshot": self.backups.snapshot,
            "remove-snapshot": self.backups.remove_snapshot,
            "restart": self._restart,
        }.get(step.kind)
        return action(step) if action else None

    def _update_ha_settings(self, step: Step) -> None:
        current = self.api.settings()
        if current is not None:  # unknown now: next loop (never patch blind: see _wanted_settings)
            self.api.update_settings(self._wanted_settings(current))

    def _ensure_accounts(self, step: Step) -> None:
        database.ensure_accounts(self.database, self.config, self.credentials.master_password,
                                 self.credentials.rewind_password, self.credentials.proxy_password)  # fmt: skip
        self.accounts_ready = True

    def _archive_catch_up(self, step: Step) -> bool:
        done = self.backups.archive_catch_up(step)
        if done:
            self.archive_caught_up = True
        return done

    def _restart(self, step: Step) -> None:
        self.api.restart_pending()

    def after_steps(self, observation: Observation) -> None:
        """A commit every few seconds: a time target is only reached at a commit after it,
        so an idle database still has restorable moments up to the last heartbeat."""
        if not (observation.primary and self.accounts_ready):
            return
        if time.monotonic() - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        at, lsn = database.heartbeat(self.database)
        self.last_heartbeat = time.monotonic()
        self.backups.note_heartbeat(at, lsn)

    # -- report

    def report(self, observation: Observation, steps: list[Step]) -> AgentReport:
        archiving = lag = None
        if observation.primary and self.config.backup:
            try:
                archiving = self.backups.archiving(database.archiver(self.database))
            except psycopg.Error as error:
                log.warning("reading pg_stat_archiver failed: %s", error)
        if observation.primary:
            try:
                lag = database.replication_lag(self.database)
            except psycopg.Error as error:
                log.warning("reading pg_stat_replication failed: %s", error)
        health = archive_health(archiving) if archiving else None
        earliest, latest = self.backups.restorable()
        automated = self.backups.automated()
        last_backup = automated[-1].stopped if automated else None
        self.metrics.update(observation, archiving, lag, latest, earliest, last_backup)
        volume_bytes, volume_free = volume_usage(self.pod.data_dir.parent)  # the mount, even before initdb
        self.metrics.volume(volume_bytes, volume_free)
        replica_lag, streaming, sessions = None, None, None
        if observation.state == RUNNING:
            try:
                sessions = database.client_connections(self.database)
                # A read replica's leader: behind its source; a replica: behind its primary
                # (the reader endpoints leave out one too far behind).
                if observation.standby_leader or observation.role == REPLICA:
                    replica_lag, streaming = database.replica_lag(self.database)
            except psycopg.Error as error:
                log.warning("reading the lag or the sessions failed: %s", error)
        synchronous = None
        if observation.role == REPLICA and self.config.synchronous:
            # The operator switches over only to a synchronous standby (a rolling update).
            synchronous = self.api.is_synchronous_standby()
        return AgentReport(
            role=observation.role,
            state=observation.state,
            synchronous_standby=synchronous,
            # False until this server, as primary, has set its master user and password; None
            # on a standby (it holds the primary's accounts, so a promoted one serves at once).
            accounts_ready=None if observation.role == REPLICA else self.accounts_ready,
            backup_healthy=None if health is None else health.healthy,
            backup_reason=health.reason if health else None,
            backup_message=health.message if health else None,
            latest_restorable_time=rfc3339(latest),
            earliest_restorable_time=rfc3339(earliest),
            last_backup_time=rfc3339(last_backup),
            archive_segments_behind=archiving.segments_behind
            if archiving
            else waiting_segments(self.pod.data_dir)
            if self.config.backup
            else None,
            replication_lag_bytes=lag,
            replica_lag_seconds=replica_lag,
            cpu_percent=self.cpu.percent(),
            client_connections=sessions,
            streaming=streaming,
            volume_bytes=volume_bytes,
            volume_free_bytes=volume_free,
            api_tls=self.api_ca is not None,
            doing=[s.reason for s in steps],
        )


def waiting_segments(data_dir: Path) -> int | None:
    """WAL segments PostgreSQL marked ready for the archive and not yet archived, counted on
    disk: what a stopped server (a full volume stops it) can still say. None: no such
    directory (no data directory yet)."""
    try:
        names = [f.name for f in (data_dir / "pg_wal" / "archive_status").iterdir()]
    except OSError:
        return None
    return sum(1 for name in names if name.endswith(".ready") and len(name) == len("0" * 24 + ".ready"))


def kept_repository(running: BackupPlan, fresh: BackupPlan) -> BackupPlan:
    """A new retention, window or store CA is taken; a different repository (store, path,
    name, encryption) is not, whoever wrote it: WAL would go elsewhere, or unencrypted."""
    old, new = running.repository, fresh.repository
    same = replace(new, store=replace(new.store, ca_bundle=old.store.ca_bundle)) == old
    if not same:
        log.error("agent.json asks for another backup repository (%s, %s); keeping %s, %s", new.path,
                  "encrypted" if new.encrypted else "not encrypted", old.path, "encrypted" if old.encrypted else
                  "not encrypted")  # fmt: skip
        new = replace(old, store=replace(old.store, ca_bundle=new.store.ca_bundle))
    return replace(fresh, repository=new)
