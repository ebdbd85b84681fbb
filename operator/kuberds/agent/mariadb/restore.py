"""Restoring a MariaDB server from its repository, before its mariadbd first starts: a full
backup into the data directory, then (to a time, or to the latest) the shipped binlogs.

Everything happens in a staging directory beside the data directory, which replaces it only
once the data is whole: an agent that dies half way finds the data directory empty again
(and `LocalServer.installed()` false), so the restore is simply done again, never a server
started on half the data.

1. The full backup's parts are downloaded one ahead of the reader, unsealed and piped into
   `mbstream -x`; `mariadb-backup --prepare` makes the data consistent.
2. A temporary mariadbd starts on it: the member's own my.cnf (its InnoDB settings, its binlog
   names) with a private socket, no networking, no replication, no event scheduler, and
   without grant tables (the restored accounts may not let the agent in; the client turns
   them back on first, so account statements in the binlogs apply). Its binlog state is set
   to the backup's position, so the replayed transactions keep their GTIDs and the restored
   server goes on from the source's history.
3. `mariadb-binlog --start-position=<GTID> [--stop-datetime=<target>]` of each run of shipped
   binlogs is piped into one `mariadb` client (argv only: two processes and an OS pipe). The
   boundary: an event is applied when its binlog time is before the target second; a
   transaction stamped with the target second or later is not (RDS: "transactions committed
   before that time"). Binlog times are whole seconds, so a target's fraction is dropped:
   never an event after the target, at the cost of up to a second before it.
4. The temporary server stops cleanly; what it reached is read from it (@@gtid_binlog_pos).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pymysql

from kuberds.agent.mariadb.backups import Manifest, RestoreChoice, choose, list_fulls, tool
from kuberds.agent.mariadb.binlogs import BinlogObject, list_binlogs, runs, transaction_times
from kuberds.agent.mariadb.gtid import GtidPos, covers
from kuberds.agent.mariadb.parts import PartReader
from kuberds.agent.mariadb.server import Sql
from kuberds.agent.objectstore import ObjectStore
from kuberds.agent.processes import OsUser
from kuberds.agent.sealed import SealError, unseal
from kuberds.contract.settings import Repository, RestorePlan

log = logging.getLogger("kuberds.agent")

STARTUP_SECONDS = 300  # the temporary server answering (it may run InnoDB recovery)
LEFT_BY_BACKUP = ("xtrabackup_binlog_info", "xtrabackup_binlog_pos_innodb", "xtrabackup_checkpoints",
                  "xtrabackup_info", "mariadb_backup_binlog_info", "mariadb_backup_checkpoints",
                  "mariadb_backup_info", "backup-my.cnf")  # fmt: skip
RUN_FILES = 16  # binlogs on disk at once while replaying
LOG_BIN = re.compile(r"^log_bin\s*=\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Restored:
    label: str
    backup_gtid: str  # where the full backup left the data
    gtid: str  # where the data is now
    binlogs: int  # files applied
    last_event: datetime | None  # the last applied transaction's time (None: no binlog applied)
    target: datetime | None
    plain_bytes: int
    seconds: float


def _fresh(directory: Path, os_user: OsUser) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os_user.own(directory)
    return directory


# ---------------------------------------------------------------- the full backup


def extract(store: ObjectStore, manifest: Manifest, passphrase: str | None, staging: Path, work_dir: Path,
            os_user: OsUser) -> int:  # fmt: skip
    """The backup's files into `staging`, checked against the manifest; the plain bytes."""
    reader = PartReader(store, manifest.parts, work_dir)
    errors = work_dir / "mbstream.err"
    with errors.open("wb") as err:  # a file, not a pipe: nothing to drain while we write
        mbstream = os_user.popen([tool("mbstream"), "-x", "-C", str(staging)], stdin=subprocess.PIPE, stderr=err)
    try:
        opened = unseal(reader, mbstream.stdin, passphrase)
        mbstream.stdin.close()
    except BrokenPipeError as error:  # mbstream gave up: its words, not the pipe's
        mbstream.wait()
        raise RuntimeError(f"mbstream stopped reading: {errors.read_text(errors='replace')[-2000:]}") from error
    except BaseException:
        mbstream.kill()
        raise
    finally:
        reader.close()
        mbstream.wait()
    if mbstream.returncode != 0:
        raise RuntimeError(f"mbstream exited with {mbstream.returncode}: {errors.read_text(errors='replace')[-2000:]}")
    if opened.sha256 != manifest.sha256:
        raise SealError(f"backup {manifest.label}: the stream does not match its manifest's sha256")
    return opened.plain_bytes


def prepare(staging: Path, os_user: OsUser) -> str:
    """mariadb-backup --prepare; the GTID position the prepared data is at."""
    done = os_user.run([tool("mariadb-backup"), "--prepare", f"--target-dir={staging}"], timeout=None)
    if done.returncode != 0:
        raise RuntimeError(f"mariadb-backup --prepare exited with {done.returncode}: {done.stderr[-2000:]}")
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
        with contextlib.suppress(FileNotFoundError):
            fields = (staging / name).read_text().split("\t")
            return fields[2].strip() if len(fields) > 2 else ""
    raise RuntimeError("the backup has no binlog position (xtrabackup_binlog_info is missing)")


# ---------------------------------------------------------------- the temporary server


def temporary_config(config: str, staging: Path, work_dir: Path) -> tuple[str, str]:
    """The member's my.cnf with the data, binlog and socket moved (later lines win in one
    section); and the binlogs' base name."""
    found = LOG_BIN.search(config)
    base = Path(found[1]).name if found else "mariadb-bin"
    overrides = {
        "datadir": staging, "log_bin": staging / base, "log_bin_index": staging / f"{base}.index",
        "relay_log": staging / "relay-bin", "relay_log_index": staging / "relay-bin.index",
        "socket": work_dir / "pitr.sock", "pid_file": work_dir / "pitr.pid",
        "skip_networking": "ON", "skip_grant_tables": "ON", "skip_slave_start": "ON", "event_scheduler": "OFF",
        "read_only": "OFF", "rpl_semi_sync_master_enabled": "OFF", "rpl_semi_sync_slave_enabled": "OFF",
        # A crash restarts the whole restore: no need to make each replayed commit durable.
        "sync_binlog": "0", "innodb_flush_log_at_trx_commit": "2", "max_allowed_packet": "1G",
    }  # fmt: skip
    lines = ["", "# The temporary server of a restore (kuberds.agent.mariadb.restore)."]
    return config.rstrip("\n") + "\n".join(lines + [f"{k} = {v}" for k, v in overrides.items()]) + "\n", base


class TemporaryServer:
    def __init__(self, config: str, staging: Path, work_dir: Path, os_user: OsUser, mariadbd: str):
        text, self.base = temporary_config(config, staging, work_dir)
        self.config_file, self.socket = work_dir / "pitr.cnf", work_dir / "pitr.sock"
        self.log_file = work_dir / "pitr.log"
        os_user.write_private(self.config_file, text)
        self.os_user, self.mariadbd = os_user, mariadbd
        self.process: subprocess.Popen | None = None
        # Opened before any account is loaded, it keeps every privilege (grant tables are off).
        self.sql = Sql(unix_socket=str(self.socket), user="root", read_timeout=3600, write_timeout=3600)

    def __enter__(self) -> TemporaryServer:
        with self.log_file.open("ab") as out:
            self.process = self.os_user.popen([self.mariadbd, f"--defaults-file={self.config_file}"],
                                              stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            with contextlib.suppress(pymysql.Error, OSError):
                self.sql.rows("SELECT 1")
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the restore's temporary mariadbd did not start: {self.log_tail()}")
            time.sleep(0.2)

    def __exit__(self, kind: type | None, *exc: object) -> None:
        try:
            self.stop()
        except RuntimeError:
            if kind is None:  # an error already on its way says more than this one
                raise

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def start_binlog_at(self, gtid: str) -> None:
        self.sql.run("RESET MASTER")
        if gtid:
            self.sql.run("SET GLOBAL gtid_binlog_state = %s", (gtid,))

    def gtid(self) -> str:
        return self.sql.rows("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]

    def stop(self) -> None:
        self.sql.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean shutdown: InnoDB and the binlog are closed
            code = self.process.wait(timeout=STARTUP_SECONDS)
            if code != 0:
                raise RuntimeError(f"the temporary mariadbd exited with {code}: {self.log_tail()}")


# ---------------------------------------------------------------- binlogs


def fetch_binlog(store: ObjectStore, key: str, passphrase: str | None, directory: Path, name: str) -> Path:
    sealed, plain = directory / f".{name}.sealed", directory / name
    store.get_to_file(key, sealed)
    try:
        with sealed.open("rb") as source, plain.open("wb") as target:
            unseal(source, target, passphrase)
    finally:
        sealed.unlink(missing_ok=True)
    return plain


def replay_argv(files: list[Path], start: str, stop: datetime | None) -> list[str]:
    argv = [tool("mariadb-binlog")]
    argv += [f"--start-position={start}"] if start else []
    argv += [f"--stop-datetime={stop:%Y-%m-%d %H:%M:%S}"] if stop else []
    return argv + [str(f) for f in files]


def client_argv(socket: Path) -> list[str]:
    # FLUSH PRIVILEGES turns the grant tables on for account statements in the binlogs; this
    # session keeps the privileges it was opened with. Not written to the binlog.
    return [tool("mariadb"), "--no-defaults", f"--socket={socket}", "--user=root", "--binary-mode",
            "--max-allowed-packet=1G", "--init-command=FLUSH NO_WRITE_TO_BINLOG PRIVILEGES"]  # fmt: skip


def replay(store: ObjectStore, repository: Repository, files: list[BinlogObject], start: str,
           stop: datetime | None, passphrase: str | None, directory: Path, server: TemporaryServer,
           os_user: OsUser) -> list[Path]:  # fmt: skip
    """Every run of binlogs, RUN_FILES at a time on disk, through mariadb-binlog into one client
    session; the last files read are left for `last_event`."""
    env = {**os_user.env, "TZ": "UTC"}  # mariadb-binlog reads --stop-datetime in local time
    errors = directory / "client.err"
    read, write = os.pipe()
    try:
        with errors.open("wb") as err:
            client = os_user.popen(client_argv(server.socket), stdin=read, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        os.close(read)
    paths: list[Path] = []
    try:
        position = start
        for run in runs(files):
            for i in range(0, len(run), RUN_FILES):
                _discard(paths)
                piece = run[i : i + RUN_FILES]
                paths = [fetch_binlog(store, f.key(repository), passphrase, directory, f.file) for f in piece]
                reader = os_user.popen(replay_argv(paths, position, stop), stdout=write, stderr=subprocess.PIPE,
                                       env=env)  # fmt: skip
                _, complaint = reader.communicate()
                if reader.returncode != 0:  # the client failing first breaks the pipe: say its error too
                    raise RuntimeError(f"mariadb-binlog exited with {reader.returncode}: "
                                       f"{complaint.decode(errors='replace')[-2000:]} (mariadb: "
                                       f"{errors.read_text(errors='replace')[-2000:]})")  # fmt: skip
                position = str(piece[-1].end)
    except BaseException:
        _discard(paths)
        raise
    finally:
        os.close(write)  # the client's end of input
        client.wait()
    if client.returncode != 0:
        raise RuntimeError(f"applying binlogs: mariadb exited with {client.returncode}: "
                           f"{errors.read_text(errors='replace')[-2000:]}")  # fmt: skip
    return paths


def _discard(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def last_event(store: ObjectStore, repository: Repository, files: list[BinlogObject], kept: list[Path],
               reached: GtidPos, passphrase: str | None, directory: Path) -> datetime | None:  # fmt: skip
    """The time of the transaction the data now ends with, from the binlog that holds it."""
    holder = next((f for f in reversed(files) if covers(f.end, reached) and not covers(f.start, reached)), None)
    if holder is None:
        return None
    path = next((p for p in kept if p.name == holder.file and p.exists()), None)
    path = path or fetch_binlog(store, holder.key(repository), passphrase, directory, holder.file)
    last = {gtid: at for gtid, at in transaction_times(path) if reached.domains.get(gtid.domain) == gtid}
    return max(last.values()) if last else None


def finish(staging: Path, data_dir: Path, base: str) -> None:
    """What only the restore needed goes; the binlog index names the final directory; then
    the staging directory becomes the data directory in one rename."""
    for name in LEFT_BY_BACKUP:
        (staging / name).unlink(missing_ok=True)
    index = staging / f"{base}.index"
    if index.exists():
        index.write_text(index.read_text().replace(str(staging), str(data_dir)))
    os.replace(staging, data_dir)


@dataclass(frozen=True)
class _Staged:
    plain_bytes: int
    backup_gtid: str
    reached: GtidPos
    last_event: datetime | None
    binlog_base: str


def _stage(choice: RestoreChoice, repository: Repository, store: ObjectStore, passphrase: str | None, staging: Path,
           work: Path, os_user: OsUser, config: str, mariadbd: str) -> _Staged:  # fmt: skip
    plain = extract(store, choice.full, passphrase, staging, work, os_user)
    backup_gtid = prepare(staging, os_user)
    if backup_gtid != choice.full.gtid:
        log.warning("backup %s: the data is at %s, its manifest said %s; going on from the data's",
                    choice.full.label, backup_gtid, choice.full.gtid)  # fmt: skip
    kept: list[Path] = []
    with TemporaryServer(config, staging, work, os_user, mariadbd) as server:
        server.start_binlog_at(backup_gtid)
        if choice.binlogs:
            kept = replay(store, repository, choice.binlogs, backup_gtid, choice.stop, passphrase, work, server,
                          os_user)  # fmt: skip
        reached = GtidPos.parse(server.gtid())
    last = last_event(store, repository, choice.binlogs, kept, reached, passphrase, work) if kept else None
    return _Staged(plain, backup_gtid, reached, last, server.base)


def restore(plan: RestorePlan, data_dir: Path, work_dir: Path, *, store: ObjectStore, passphrase: str | None,
            os_user: OsUser, config: str, mariadbd: str = "/usr/sbin/mariadbd") -> Restored:  # fmt: skip
    """Into `data_dir`, absent or empty, before mariadbd first starts there. `config` is the
    member's my.cnf (its directories prepared: LocalServer.prepare). Raises RestoreRefused
    when the repository cannot restore what the plan asks, SealError for a wrong passphrase
    or a damaged backup; the data directory is left empty then."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RuntimeError(f"{data_dir} is not empty: a restore goes into an empty data directory only")
    clock = time.monotonic()
    choice = choose(plan, list_fulls(store, plan.repository), list_binlogs(store, plan.repository))
    until = f"to {choice.stop:%Y-%m-%dT%H:%M:%SZ}" if choice.stop else "to their end"
    log.info("restoring full backup %s (%s) and %d binlog(s), %s", choice.full.label, choice.full.gtid or "empty",
             len(choice.binlogs), until)  # fmt: skip
    work = _fresh(work_dir / "restore", os_user)
    staging = _fresh(data_dir.parent / f".{data_dir.name}.restoring", os_user)
    try:
        staged = _stage(choice, plan.repository, store, passphrase, staging, work, os_user, config, mariadbd)
        finish(staging, data_dir, staged.binlog_base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - clock
    rate = staged.plain_bytes / max(seconds, 1e-6) / 2**20
    log.info("restored %s to %s (last transaction %s): %d bytes of backup and %d binlog(s) in %.1f s (%.1f MiB/s)",
             choice.full.label, staged.reached or "an empty position", staged.last_event, staged.plain_bytes,
             len(choice.binlogs), seconds, rate)  # fmt: skip
    return Restored(choice.full.label, staged.backup_gtid, str(staged.reached), len(choice.binlogs), staged.last_event,
                    choice.stop, staged.plain_bytes, seconds)  # fmt: skip
