"""`kuberds agent postgres`: the instance manager inside each PostgreSQL pod.

It writes Patroni's and pgBackRest's configuration, runs Patroni (which runs PostgreSQL
and owns every HA decision), and every couple of seconds observes, decides
(`kuberds.agent.decisions`) and acts: master user and database, the repository stanza,
automated backups, DBSnapshots, pending restarts. It reports through a pod annotation
(the operator folds it into the DBInstance's status) and Prometheus metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import signal
import subprocess
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from kuberds.agent import patroni
from kuberds.agent.config import AgentConfig, Credentials, Pod, basic_auth
from kuberds.agent.decisions import (
    PRIMARY_ROLES,
    STANDBY_ROLES,
    Backoff,
    Observation,
    SnapshotRequest,
    Step,
    next_steps,
)
from kuberds.agent.report import AgentMetrics, publish_status
from kuberds.backup import pgbackrest
from kuberds.backup.schedule import Archiving, Backups, Window, archive_health
from kuberds.builders.meta import AGENT_STATUS_ANNOTATION
from kuberds.quantity import to_bytes

log = logging.getLogger("kuberds.agent")

LOOP_SECONDS = 2.0
INFO_EVERY_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0
SNAPSHOT_LIST_SECONDS = 10.0
WAL_SEGMENT = 16 * 2**20


def segment_number(wal_file: str | None) -> int | None:
    """Position of a WAL file (TTTTTTTTXXXXXXXXYYYYYYYY[.partial]) in the stream of 16 MiB
    segments; None for anything else (a timeline's .history file is archived too)."""
    name = (wal_file or "")[:24]
    if len(name) != 24 or any(c not in "0123456789ABCDEF" for c in name):
        return None
    return int(name[8:16], 16) * (2**32 // WAL_SEGMENT) + int(name[16:24], 16)


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class Engine:
    """Runs commands as the engine's OS user (the agent may be root in tests; never in a pod)."""

    def __init__(self, pod: Pod, env: dict[str, str]):
        self.pod, self.env = pod, env
        self.user = pwd.getpwnam(pod.engine_user) if pod.engine_user and os.geteuid() == 0 else None

    def own(self, *paths: Path) -> None:
        if self.user:
            for path in paths:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        if self.user:
            kwargs |= {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.Popen(argv, env=self.env, cwd=str(self.pod.run_dir), **kwargs)

    def run(self, argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        process = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        return subprocess.CompletedProcess(argv, process.returncode, out, err)


class Worker:
    """One long job at a time (a backup), off the loop thread, so the loop keeps reporting."""

    def __init__(self):
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, name: str, job: Callable[[], None]) -> None:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("job %s failed", name)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()


@dataclass
class Database:
    """A superuser connection over TCP (password auth works whoever the agent runs as)."""

    port: int
    password: str
    connection: psycopg.Connection | None = None

    def query(self, statement: str | sql.Composable, params: tuple = ()) -> list[tuple]:
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(host="127.0.0.1", port=self.port, user=patroni.SUPERUSER,
                                              password=self.password, dbname="postgres", autocommit=True,
                                              connect_timeout=3)  # fmt: skip
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


class PostgresAgent:
    def __init__(self, pod: Pod, credentials: Credentials, kube=None):
        self.pod, self.credentials, self.kube = pod, credentials, kube
        self.config = AgentConfig.from_json((pod.config_dir / "agent.json").read_text())
        self.port = pod.postgres_port or self.config.port
        self.patroni_file = pod.run_dir / "patroni.yml"
        self.own_commands, self.restore_commands = self._commands()
        self.engine = Engine(pod, self._environment())
        self.database = Database(self.port, credentials.superuser_password)
        self.worker = Worker()
        self.metrics = AgentMetrics()
        self.patroni: subprocess.Popen | None = None
        self.stopping = False
        # Observed state carried between loops.
        self.accounts_ready = False
        self.tls_installed: bool | None = None  # None: not looked yet
        self.tls_reload_pending = False
        self.stanza_ready: bool | None = None
        self.backups: list[pgbackrest.BackupRecord] = []
        self.info_lock = threading.Lock()
        self.backoff = Backoff()
        self.snapshot_cache: tuple[float, list[dict]] = (0.0, [])
        self.archived_upto: int | None = None  # last WAL segment known archived
        self.was_standby = False
        self.wal_caught_up = True
        self.info_checked = 0.0
        self.heartbeats: deque[tuple[datetime, int]] = deque(maxlen=720)
        self.last_heartbeat = 0.0
        self.latest_restorable: datetime | None = None
        self.last_published: dict = {}
        self.last_steps: list[Step] = []

    # -- setup

    def _commands(self) -> tuple[pgbackrest.Commands | None, pgbackrest.Commands | None]:
        backup, restore = self.config.backup, self.config.restore
        own = pgbackrest.Commands(self.pod.run_dir / "pgbackrest.conf", backup.repository.stanza) if backup else None
        source = (
            pgbackrest.Commands(self.pod.run_dir / "pgbackrest-restore.conf", restore.repository.stanza)
            if restore
            else None
        )
        return own, source

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGBACKREST_")}
        env["PGPASSFILE"] = str(self.pod.run_dir / "pgpass")
        env["HOME"] = str(self.pod.run_dir)
        return env

    def prepare(self) -> None:
        pod, c = self.pod, self.credentials
        spool, logs = pod.run_dir / "pgbackrest-spool", pod.run_dir / "pgbackrest-log"
        for path in (pod.run_dir, spool, logs, pod.data_dir.parent):
            path.mkdir(parents=True, exist_ok=True)
            self.engine.own(path)
        # Private to the engine user; in a pod it is an emptyDir owned by root (fsGroup), which
        # the pod alone sees, and only its owner may chmod it.
        if os.geteuid() in (0, pod.run_dir.stat().st_uid):
            pod.run_dir.chmod(0o700)
        self.write_pgbackrest_configuration()
        self.install_tls()
        if restore := self.config.restore:
            secrets = pgbackrest.secret_options(restore.repository, c.restore_s3_access_key or c.s3_access_key,
                                                c.restore_s3_secret_key or c.s3_secret_key,
                                                c.restore_cipher_pass or c.cipher_pass)  # fmt: skip
            ca_file = self._write_store_ca(restore.repository.store.ca_bundle, "restore-store-ca.crt")
            text = pgbackrest.restore_configuration(repository=restore.repository, spool_dir=spool / "restore",
                                                    log_dir=logs, data_dir=pod.data_dir, secrets=secrets,
                                                    ca_file=ca_file)  # fmt: skip
            self._write(pod.run_dir / "pgbackrest-restore.conf", text)
        self.write_patroni_configuration()

    def write_pgbackrest_configuration(self) -> None:
        pod, c, backup = self.pod, self.credentials, self.config.backup
        if backup is None:
            return
        secrets = pgbackrest.secret_options(backup.repository, c.s3_access_key, c.s3_secret_key, c.cipher_pass)
        ca_file = self._write_store_ca(backup.repository.store.ca_bundle, "store-ca.crt")
        text = pgbackrest.configuration(repository=backup.repository, retention_days=backup.retention_days,
                                        data_dir=pod.data_dir, port=self.port, socket_dir=pod.run_dir,
                                        spool_dir=pod.run_dir / "pgbackrest-spool",
                                        log_dir=pod.run_dir / "pgbackrest-log", secrets=secrets,
                                        ca_file=ca_file)  # fmt: skip
        self._write(pod.run_dir / "pgbackrest.conf", text)

    def _write_store_ca(self, bundle: str | None, file: str) -> Path | None:
        """A private CA of the object store, where pgBackRest reads it (every command rereads)."""
        if not bundle:
            return None
        path = self.pod.run_dir / file
        self._write(path, bundle)
        return path

    def write_patroni_configuration(self) -> None:
        document = patroni.configuration(self.served_config(), self.pod, self.credentials, own=self.own_commands,
                                         restore=self.restore_commands)  # fmt: skip
        if self.pod.kube_context:
            document["kubernetes"]["context"] = self.pod.kube_context
        self._write(self.patroni_file, json.dumps(document, indent=1))

    def _write(self, path: Path, text: str | bytes) -> None:
        """Private from its first byte (secrets, keys), and whole: readers see the old file or
        the new one, never a part."""
        data = text.encode() if isinstance(text, str) else text
        partial = path.with_name(f".{path.name}.new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o600)  # an existing leftover keeps its mode otherwise
        self.engine.own(partial)
        os.replace(partial, path)

    # -- Patroni

    def start_patroni(self) -> None:
        log.info("starting Patroni for member %s of %s", self.pod.name, self.config.scope)
        self.patroni = self.engine.popen(["patroni", str(self.patroni_file)])

    def patroni_api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 2.0):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.pod.agent_port}{path}", data=data, method=method,
                                         headers=basic_auth(self.credentials.api_password))  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:  # Patroni answers 503 with a body for replicas
            return json.loads(error.read() or b"null")

    def replaced_soon(self) -> bool:
        """agent.json is for another instance class than this pod's memory limit: the
        operator's rolling update will replace the pod."""
        wanted, have = self.config.memory_limit, self.pod.memory_limit_bytes
        return bool(wanted and have and to_bytes(wanted) != have)

    def synchronous_standby(self) -> bool | None:
        """Whether this member is Patroni's synchronous standby (GET /sync answers 200 only
        then): the one a switchover may go to without losing commits. None when unknown."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.pod.agent_port}/sync", method="GET")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return True
        except urllib.error.HTTPError:
            return False
        except OSError:
            return None

    def reload_if_changed(self) -> None:
        """The kubelet refreshes the mounted ConfigMap; new parameters go to Patroni by SIGHUP
        (Patroni reloads what it can and flags what needs a restart)."""
        fresh = AgentConfig.from_json((self.pod.config_dir / "agent.json").read_text())
        if fresh.backup != self.config.backup and self.config.backup is not None and fresh.backup is not None:
            # retentionDays or the window (the store itself cannot change): pgBackRest reads
            # its file on every command, so rewriting it is enough.
            log.info("backup settings changed: retention %s days, window %s", fresh.backup.retention_days,
                     fresh.backup.window)  # fmt: skip
            self.config = replace(self.config, backup=fresh.backup)
            self.write_pgbackrest_configuration()
        ha_fields = ("instances", "synchronous", "synchronous_strict", "ha")
        if any(getattr(fresh, f) != getattr(self.config, f) for f in ha_fields):
            self.config = replace(self.config, **{f: getattr(fresh, f) for f in ha_fields})
        if fresh.tls != self.config.tls:
            log.info("client TLS changed (%s): reloading Patroni", fresh.tls)
            self.config = replace(self.config, tls=fresh.tls)
            self.install_tls()
            self._reload_patroni()
        elif self.install_tls():
            log.info("the served certificate changed: PostgreSQL reloads it")
            self.tls_reload_pending = True
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
            self.database.query("SELECT pg_reload_conf()")
            self.tls_reload_pending = False
        except (psycopg.Error, OSError) as error:
            log.info("reloading PostgreSQL for the new certificate: %s; will retry", error)

    def install_tls(self) -> bool:
        """Copies the mounted certificate and key where the engine reads them (its own, 0600:
        PostgreSQL refuses a key others may read); True when they changed. Without them (TLS
        turned on while this pod, made before, has no such mount) TLS stays off here until
        the rolling update replaces the pod: ssl=on without files would stop PostgreSQL."""
        tls = self.config.tls
        if tls is None:
            self.tls_installed = False
            return False
        sources = (Path(tls.directory) / "tls.crt", Path(tls.directory) / "tls.key")
        if not all(source.is_file() for source in sources):
            if self.tls_installed is not False:
                log.warning("client TLS is configured but %s has no tls.crt/tls.key: not serving TLS", tls.directory)
            self.tls_installed = False
            return False
        changed = False
        for source, target in zip(sources, patroni.tls_files(self.pod), strict=True):
            data = source.read_bytes()
            if target.exists() and target.read_bytes() == data:
                continue
            self._write(target, data)
            changed = True
        self.tls_installed = True
        return changed

    def served_config(self) -> AgentConfig:
        """The configuration as served: without TLS while its files are missing."""
        return self.config if self.tls_installed else replace(self.config, tls=None)

    # -- observe

    def observe(self) -> Observation:
        now = datetime.now(UTC)
        try:
            state = self.patroni_api("/patroni") or {}
        except OSError:
            state = {}
        role, pg_state = state.get("role"), state.get("state")
        leader = role in PRIMARY_ROLES
        if state and not leader:  # Patroni said so (a 2 s hiccup of its API is not a demotion)
            self.accounts_ready = False
            if pg_state == "running":
                self.was_standby = True
        elif pg_state == "running" and self.was_standby:
            self.was_standby, self.wal_caught_up = False, False
        cluster = self._cluster() if state.get("pending_restart") and leader else {}
        backup = self.config.backup
        if backup and leader and pg_state == "running":
            self._refresh_info()
        return Observation(
            now=now,
            role=role,
            state=pg_state,
            pending_restart=bool(state.get("pending_restart")),
            replaced_soon=self.replaced_soon(),
            replicas_pending_restart=any(
                m.get("pending_restart") for m in cluster.get("members", []) if m.get("name") != self.pod.name
            ),
            backups_configured=backup is not None,
            stanza_ready=self.stanza_ready,
            backups=self._automated_backups(),
            backup_running=self.worker.busy,
            retention_days=backup.retention_days if backup else 0,
            window=Window.parse(backup.window) if backup else Window.parse("03:00-03:30"),
            accounts_ready=self.accounts_ready,
            wal_caught_up=self.wal_caught_up,
            ha_settings_current=self._ha_settings_current() if leader else True,
            snapshots=self._snapshot_requests() if backup and leader else [],
        )

    def _ha_settings_current(self) -> bool:
        try:
            current = self.patroni_api("/config") or {}
        except (OSError, ValueError):
            return True  # unknown: nothing to do this time
        return all(current.get(key) == value for key, value in patroni.dynamic_settings(self.config).items())

    def _step_update_ha_settings(self, step: Step) -> None:
        self.patroni_api("/config", "PATCH", patroni.dynamic_settings(self.config))

    def _cluster(self) -> dict:
        try:
            return self.patroni_api("/cluster") or {}
        except OSError:
            return {}

    def _automated_backups(self) -> Backups:
        automated = [b for b in self.backups if b.repo == pgbackrest.AUTOMATED]
        fulls = [b for b in automated if b.kind == "full"]
        return Backups(fulls[-1].stopped if fulls else None, automated[-1].stopped if automated else None)

    def _refresh_info(self, force: bool = False) -> None:
        """Reads the repositories. The loop and the backup worker both call it: one at a time
        (the lock), and a repository in error keeps the last good view rather than looking
        empty (an empty view would start a needless "first" full backup)."""
        if not force and time.monotonic() - self.info_checked < INFO_EVERY_SECONDS:
            return
        assert self.own_commands is not None
        with self.info_lock:
            result = self.engine.run(self.own_commands.info(), timeout=60)
            self.info_checked = time.monotonic()
            if result.returncode != 0:
                log.warning("pgbackrest info failed: %s", result.stderr.strip()[-500:])
                return
            info = json.loads(result.stdout)
            ready = pgbackrest.stanza_ready(info, self.own_commands.stanza)
            if ready or self.stanza_ready is None:
                self.stanza_ready = ready
            if ready:
                self.backups = pgbackrest.parse_info(info, self.own_commands.stanza)
            else:
                log.warning("backup repository not readable as a whole; keeping the last view")

    def _snapshot_requests(self) -> list[SnapshotRequest]:
        if self.kube is None:
            return []
        # Listed at most every SNAPSHOT_LIST_SECONDS (a request's latency is a backup's anyway).
        listed_at, listed = self.snapshot_cache
        if time.monotonic() - listed_at >= SNAPSHOT_LIST_SECONDS:
            listed = self.kube.list("DBSnapshot", self.config.namespace)
            self.snapshot_cache = (time.monotonic(), listed)
        requests = []
        for snap in listed:
            if (snap.get("spec", {}).get("source") or {}).get("dbInstance") != self.config.scope:
                continue
            status = snap.get("status") or {}
            if status.get("phase") in ("Failed", "Deleted"):
                continue
            meta = snap["metadata"]
            label = status.get("backupID") or self._label_for(meta["uid"])
            if label and not status.get("backupID") and not self.worker.busy:
                # Taken, but the agent stopped before saying so: say it now.
                self._mark_available(meta["name"], label)
            requests.append(SnapshotRequest(
                name=meta["name"], uid=meta["uid"], backup_label=label,
                deleting="deletionTimestamp" in meta, retain=snap["spec"].get("deletionPolicy") == "Retain",
            ))  # fmt: skip
        return requests

    def _label_for(self, uid: str) -> str | None:
        """A snapshot already in the repository (taken before a restart of the agent)."""
        for record in self.backups:
            if record.annotations.get(pgbackrest.DELETED_ANNOTATION):
                continue
            if record.annotations.get(pgbackrest.SNAPSHOT_ANNOTATION) == uid:
                return record.label
        return None

    def _archiving(self) -> Archiving:
        rows = self.database.query(
            "SELECT last_archived_wal, last_archived_time, last_failed_time, failed_count,"
            " pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver"
        )
        archived, archived_at, failed_at, failed, current_file = rows[0]
        current, done_upto = segment_number(current_file), segment_number(archived)
        if done_upto is None:  # nothing archived yet, or the last file was a .history file
            done_upto = self.archived_upto
        self.archived_upto = done_upto
        behind = current - done_upto - 1 if done_upto is not None else current
        if done_upto is not None:
            archived_end = (done_upto + 1) * WAL_SEGMENT
            done = [t for t, lsn in self.heartbeats if lsn <= archived_end]
            if done and (self.latest_restorable is None or done[-1] > self.latest_restorable):
                self.latest_restorable = done[-1]
        return Archiving(archived_at, failed_at, failed, max(behind, 0))

    def _replication_lag(self) -> int:
        """Bytes the slowest standby has still to replay (0 without standbys)."""
        rows = self.database.query(
            "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint"
            " FROM pg_stat_replication"
        )
        return int(rows[0][0])

    # -- act

    def act(self, steps: list[Step]) -> None:
        """Performs the steps; a step method returns False when it failed (then that kind
        of step backs off), anything else counts as done or started."""
        for step in steps:
            action = getattr(self, "_step_" + step.kind.replace("-", "_"), None)
            if action is None or not self.backoff.ready(step.kind, time.monotonic()):
                continue
            log.info("%s", step.reason)
            try:
                failed = action(step) is False
            except (psycopg.Error, OSError) as error:
                # One step failing must not keep the others (ensure-accounts above all) from running.
                log.warning("%s failed: %s", step.kind, error)
                failed = True
            if failed:
                self.backoff.failed(step.kind, time.monotonic())
            else:
                self.backoff.succeeded(step.kind)

    def _step_ensure_accounts(self, step: Step) -> None:
        cfg, c = self.config, self.credentials
        user, db = cfg.master_username, cfg.database_name
        exists = self.database.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
        verb = "ALTER" if exists else "CREATE"
        # The master user is not a superuser (like RDS's rds_superuser): it creates roles and
        # databases and reads/writes all data.
        self.database.query(sql.SQL("{} ROLE {} WITH LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(user), sql.Literal(c.master_password)))  # fmt: skip
        for granted in ("pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend"):
            self.database.query(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(user)))
        if not self.database.query("SELECT 1 FROM pg_database WHERE datname = %s", (db,)):
            self.database.query(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(user)))
        self.database.query("CREATE SCHEMA IF NOT EXISTS kuberds")
        self.database.query("CREATE TABLE IF NOT EXISTS kuberds.heartbeat (id int PRIMARY KEY, at timestamptz)")
        self.accounts_ready = True

    def _step_create_stanza(self, step: Step) -> bool:
        assert self.own_commands is not None
        result = self.engine.run(self.own_commands.stanza_create(), timeout=120)
        if result.returncode != 0:
            log.warning("stanza-create failed: %s", result.stderr.strip()[-500:])
            return False
        self._refresh_info(force=True)
        return True

    def _step_archive_catch_up(self, step: Step) -> bool:
        """Pushes every complete segment in pg_wal that a standby marked done (streamed, not
        archived by it) and that is newer than the repository's newest; pgBackRest skips a
        segment it already holds with the same content."""
        assert self.own_commands is not None
        result = self.engine.run(self.own_commands.info(), timeout=60)
        if result.returncode != 0:
            return False
        newest = segment_number(pgbackrest.archive_max(json.loads(result.stdout), self.own_commands.stanza))
        wal = self.pod.data_dir / "pg_wal"
        pushed = 0
        for done in sorted((wal / "archive_status").glob("*.done")):
            name = done.name.removesuffix(".done")
            number = segment_number(name)
            if len(name) != 24 or number is None or (newest is not None and number <= newest):
                continue
            if self.engine.run(self.own_commands.push_now(wal / name), timeout=300).returncode != 0:
                log.warning("archiving %s after promotion failed; will retry", name)
                return False
            pushed += 1
        log.info("after promotion: %d segment(s) of the old primary archived", pushed)
        self.wal_caught_up = True
        return True

    def _step_backup(self, step: Step) -> None:
        assert self.own_commands is not None and step.argument

        def job() -> None:
            # pgBackRest expires repo1 by itself after the backup; repo2's WAL is trimmed here.
            if self._backup(self.own_commands.backup(step.argument)):
                self.engine.run(self.own_commands.expire(pgbackrest.SNAPSHOTS), timeout=600)

        self.worker.start(f"{step.argument} backup", job)

    def _backup(self, argv: list[str]) -> bool:
        started = time.monotonic()
        result = self.engine.run(argv)
        self.metrics.backup_seconds.set(time.monotonic() - started)
        if result.returncode != 0:
            log.warning("backup failed (%s): %s", result.returncode, result.stderr.strip()[-800:])
            self.metrics.backup_failures.inc()
            self.backoff.failed("backup", time.monotonic())
            self.backoff.failed("snapshot", time.monotonic())
        self._refresh_info(force=True)
        return result.returncode == 0

    def _step_snapshot(self, step: Step) -> None:
        assert self.own_commands is not None and step.argument
        name = step.argument
        snap = self.kube.get("DBSnapshot", self.config.namespace, name)
        if snap is None:
            return
        uid = snap["metadata"]["uid"]
        self._snapshot_status(name, {"phase": "Creating"})
        argv = self.own_commands.backup("full", repo=pgbackrest.SNAPSHOTS,
                                        annotations={pgbackrest.SNAPSHOT_ANNOTATION: uid})  # fmt: skip

        def job() -> None:
            ok = self._backup(argv)
            if ok:
                self._expire_marked_snapshots()
            record = next((r for r in self.backups if r.annotations.get(pgbackrest.SNAPSHOT_ANNOTATION) == uid), None)
            if ok and record:
                self._mark_available(name, record.label)
            else:
                self._snapshot_status(name, {"phase": "Failed"})

        self.worker.start(f"snapshot {name}", job)

    def _mark_available(self, name: str, label: str) -> None:
        record = next((r for r in self.backups if r.label == label), None)
        if record is None:
            return
        self._snapshot_status(name, {
            "phase": "Available", "backupID": record.label, "snapshotTime": _rfc3339(record.stopped),
            "sizeBytes": record.size_bytes, "engine": "postgres", "engineVersion": self.config.engine_version,
        })  # fmt: skip

    def _step_remove_snapshot(self, step: Step) -> bool | None:
        assert self.own_commands is not None and step.argument
        snap = next((s for s in self._snapshot_requests() if s.name == step.argument), None)
        if snap is None or snap.backup_label is None:
            return
        result = self.engine.run(self.own_commands.expire_set(snap.backup_label, pgbackrest.SNAPSHOTS), timeout=600)
        if result.returncode != 0 and pgbackrest.NEWEST_FULL_ERROR in result.stderr:
            log.info("snapshot %s is the newest in its repository: hidden now, removed after the next", snap.name)
            result = self.engine.run(self.own_commands.mark_deleted(snap.backup_label), timeout=120)
        if result.returncode != 0:
            log.warning("removing snapshot %s failed: %s", snap.name, result.stderr.strip()[-500:])
            return False
        self._refresh_info(force=True)
        self._snapshot_status(snap.name, {"phase": "Deleted", "backupID": None})

    def _expire_marked_snapshots(self) -> None:
        """Snapshots deleted while they were the newest: no longer the newest now."""
        assert self.own_commands is not None
        for record in self.backups[:-1]:
            if record.repo == pgbackrest.SNAPSHOTS and record.annotations.get(pgbackrest.DELETED_ANNOTATION):
                self.engine.run(self.own_commands.expire_set(record.label, pgbackrest.SNAPSHOTS), timeout=600)
        self._refresh_info(force=True)

    def _step_restart(self, step: Step) -> None:
        with contextlib.suppress(ValueError):  # Patroni answers a restart in plain text, not JSON
            self.patroni_api("/restart", "POST", {"restart_pending": True}, timeout=60)

    def _snapshot_status(self, name: str, status: dict) -> None:
        self.snapshot_cache = (0.0, [])  # the next look sees this write
        if self.kube is not None:
            self.kube.merge_patch("DBSnapshot", self.config.namespace, name, {"status": status}, subresource="status")

    def heartbeat(self, observation: Observation) -> None:
        """A commit every few seconds: a time target is only reached at a commit after it,
        so an idle database still has restorable moments up to the last heartbeat."""
        if not (observation.primary and self.accounts_ready):
            return
        if time.monotonic() - self.last_heartbeat < HEARTBEAT_SECONDS:
            return
        rows = self.database.query(
            "INSERT INTO kuberds.heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now() RETURNING at"
        )
        # Read after the commit (autocommit): the position is past the commit record, so a
        # segment counted as archived really holds this heartbeat.
        lsn = self.database.query("SELECT pg_current_wal_lsn()::text")[0][0]
        self.last_heartbeat = time.monotonic()
        self.heartbeats.append((rows[0][0], lsn_to_int(lsn)))

    # -- report

    def report(self, observation: Observation, steps: list[Step]) -> None:
        archiving = None
        if observation.primary:
            try:
                archiving = self._archiving() if self.config.backup else None
            except psycopg.Error as error:
                log.warning("reading pg_stat_archiver failed: %s", error)
        lag = None
        if observation.primary:
            try:
                lag = self._replication_lag()
            except psycopg.Error as error:
                log.warning("reading pg_stat_replication failed: %s", error)
        health = archive_health(archiving) if archiving else None
        automated = [b for b in self.backups if b.repo == pgbackrest.AUTOMATED]
        earliest = automated[0].stopped if automated else None
        latest = self.latest_restorable
        if latest is not None and (earliest is None or latest < earliest):
            latest = None  # nothing restorable yet: no base backup, or its end not archived yet
        status = {
            "role": observation.role,
            "state": observation.state,
            # The operator switches over only to a synchronous standby (a rolling update).
            "synchronousStandby": None
            if observation.primary or not self.config.synchronous
            else self.synchronous_standby(),
            # False until this server, as primary, has set its master user and password; None
            # on a standby (it holds the primary's accounts, so a promoted one serves at once).
            "accountsReady": None if observation.role in STANDBY_ROLES else self.accounts_ready,
            "backupHealthy": None if health is None else health.healthy,
            "backupReason": health.reason if health else None,
            "backupMessage": health.message if health else None,
            "latestRestorableTime": _rfc3339(latest),
            "earliestRestorableTime": _rfc3339(earliest),
            "lastBackupTime": _rfc3339(automated[-1].stopped) if automated else None,
            "archiveSegmentsBehind": archiving.segments_behind if archiving else None,
            "replicationLagBytes": lag,
            "doing": [s.reason for s in steps],
        }
        self.metrics.update(observation, archiving, lag, latest, automated)
        if self.kube is not None:
            self.last_published = publish_status(
                self.kube, self.pod, AGENT_STATUS_ANNOTATION, status, self.last_published
            )

    # -- the loop

    def step_once(self) -> list[Step]:
        self.reload_if_changed()
        observation = self.observe()
        steps = next_steps(observation)
        if [s.reason for s in steps] != [s.reason for s in self.last_steps]:
            for s in steps:
                log.info("decision: %s", s.reason)
        self.last_steps = steps
        try:
            self.act(steps)
            self.heartbeat(observation)
        except (psycopg.Error, OSError) as error:
            log.warning("step failed: %s", error)
        self.report(observation, steps)
        return steps

    def run(self) -> int:
        self.prepare()
        self.metrics.serve(self.pod.listen_address, self.pod.metrics_port)
        self.start_patroni()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        while not self.stopping:
            if self.patroni and self.patroni.poll() is not None:
                log.error("Patroni exited with %s", self.patroni.returncode)
                return 1
            try:
                self.step_once()
            except Exception:
                log.exception("agent loop failed; retrying")
            time.sleep(LOOP_SECONDS)
        return self._shutdown()

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _shutdown(self) -> int:
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


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None
