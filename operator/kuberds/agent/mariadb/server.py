"""This member's mariadbd and the SQL the agent speaks: to its own server over the socket (as
the OS user it runs as, through unix_socket authentication) and to its peers over TCP (as
kuberds' agent account). Every value is a bound parameter; nothing reaches a shell.

A member's state as one query round sees it is a `ServerState`; the decision reads only that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pymysql.cursors

from kuberds.agent.mariadb.config import Tls
from kuberds.agent.mariadb.gtid import GtidPos
from kuberds.agent.peers import Address
from kuberds.agent.processes import OsUser
from kuberds.contract.settings import ClientTls

log = logging.getLogger("kuberds.agent")

TIMEOUT = 1.0  # a server that does not answer within this is not reachable this loop
SOCKET, PID_FILE, CONFIG_FILE = "mysqld.sock", "mysqld.pid", "my.cnf"


@dataclass(frozen=True)
class ServerState:
    """What one server answered. `received` is what its IO thread fetched (Gtid_IO_Pos), never
    less than what it executed: with semi-sync AFTER_SYNC an acknowledged commit is there."""

    writable: bool
    executed: GtidPos
    received: GtidPos
    io_running: bool
    sql_running: bool
    source: Address | None  # the server it replicates from (None: none configured)
    io_error: str = ""
    sql_error: str = ""
    semi_sync_clients: int = 0  # replicas acknowledging this primary's commits
    acknowledging: bool = False  # a replica whose IO thread acknowledges its source's commits (semi-sync on)
    lag: float | None = None  # Seconds_Behind_Master; None: unknown (not replicating)


class Sql:
    """One connection, opened on first use and again after a failure."""

    def __init__(self, **connect: object):
        self.connect_args = {"connect_timeout": TIMEOUT, "read_timeout": TIMEOUT * 5, "write_timeout": TIMEOUT * 5,
                             "autocommit": True, "cursorclass": pymysql.cursors.DictCursor, **connect}  # fmt: skip
        self.connection: pymysql.Connection | None = None

    def _open(self) -> pymysql.Connection:
        if self.connection is None or not self.connection.open:
            self.connection = pymysql.connect(**self.connect_args)
        return self.connection

    def rows(self, statement: str, args: tuple = ()) -> list[dict]:
        try:
            with self._open().cursor() as cursor:
                cursor.execute(statement, args or None)
                return list(cursor.fetchall())
        except (pymysql.Error, OSError):
            self.close()
            raise

    def run(self, statement: str, args: tuple = ()) -> None:
        self.rows(statement, args)

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(pymysql.Error, OSError):
                self.connection.close()
            self.connection = None


def state(sql: Sql) -> ServerState:
    """Raises pymysql.Error / OSError when the server does not answer."""
    variables = sql.rows("SELECT @@read_only AS read_only, @@gtid_binlog_pos AS binlog_pos")[0]
    replica = (sql.rows("SHOW SLAVE STATUS") or [{}])[0]
    semi_sync = {r["Variable_name"]: r["Value"] for r in sql.rows("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'")}
    executed = GtidPos.parse(variables["binlog_pos"])
    fetched = GtidPos.parse(replica.get("Gtid_IO_Pos"))
    host = replica.get("Master_Host")
    return ServerState(
        writable=not int(variables["read_only"]),
        executed=executed,
        received=executed.furthest(fetched),
        # Connecting counts: it may yet reach a frozen primary and acknowledge its commits.
        io_running=replica.get("Slave_IO_Running") in ("Yes", "Connecting"),
        sql_running=replica.get("Slave_SQL_Running") == "Yes",
        source=Address(host, int(replica.get("Master_Port") or 0)) if host else None,
        io_error=replica.get("Last_IO_Error") or "",
        sql_error=replica.get("Last_SQL_Error") or "",
        semi_sync_clients=int(semi_sync.get("Rpl_semi_sync_master_clients") or 0),
        acknowledging=semi_sync.get("Rpl_semi_sync_slave_status") == "ON",
        lag=float(replica["Seconds_Behind_Master"]) if replica.get("Seconds_Behind_Master") is not None else None,
    )


def member_tls(given: ClientTls | None) -> Tls | None:
    """The member's certificate files (agent.json's tls; the CA when kuberds issued it, or
    ca.crt beside a user's certificate when its Secret has one)."""
    if given is None:
        return None
    ca = given.ca_file or (f"{given.directory}/ca.crt" if Path(given.directory, "ca.crt").exists() else None)
    return Tls(ca=ca, cert=f"{given.directory}/tls.crt", key=f"{given.directory}/tls.key", require=given.require)


def client_tls(tls: Tls | None) -> dict:
    """PyMySQL's TLS options to a peer where plain TCP is refused: the chain checked against
    the server's CA, not the name (members are reached by their pods' IPs)."""
    if tls is None or not tls.require:
        return {}
    if tls.ca:
        return {"ssl_ca": tls.ca, "ssl_verify_cert": True, "ssl_verify_identity": False}
    return {"ssl": {"check_hostname": False}}


def run_unlogged(sql: Sql, statements: list[tuple[str, tuple]]) -> None:
    """Statements about this member alone: kept out of the binlog, so no replica applies them."""
    sql.run("SET SESSION sql_log_bin = 0")
    try:
        for statement, args in statements:
            sql.run(statement, args)
    finally:
        sql.run("SET SESSION sql_log_bin = 1")


def open_writes(sql: Sql, synchronous: bool, bootstrap: list[tuple[str, tuple]] | None) -> None:
    """Makes this server the primary: replication stopped and forgotten, the accounts made on
    the first primary (before commits wait for a replica: none can connect until its account
    exists), semi-sync's primary side on when Multi-AZ, then writes open."""
    sql.run("STOP SLAVE")
    sql.run("RESET SLAVE ALL")
    sql.run("SET GLOBAL rpl_semi_sync_slave_enabled = OFF")
    if bootstrap is not None:
        sql.run("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
        for statement, args in bootstrap:
            sql.run(statement, args)
    sql.run(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if synchronous else 'OFF'}")
    sql.run("SET GLOBAL read_only = OFF")


def replicate_from(sql: Sql, source: Address, user: str, password: str, synchronous: bool,
                   tls_ca: str | None) -> None:  # fmt: skip
    """Makes this server a read-only replica of `source` from where it is (a former primary
    goes on from its own binlog position). `tls_ca`: None for plain TCP, "" for TLS without a
    CA to check the chain against."""
    sql.run("STOP SLAVE")
    sql.run("SET GLOBAL read_only = ON")
    sql.run("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
    sql.run("SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
    tls = "" if tls_ca is None else ", MASTER_SSL = 1" + (", MASTER_SSL_CA = %s" if tls_ca else "")
    sql.run("CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
            f"MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1{tls}",
            (source.host, source.port, user, password, *((tls_ca,) if tls_ca else ())))  # fmt: skip
    sql.run(f"SET GLOBAL rpl_semi_sync_slave_enabled = {'ON' if synchronous else 'OFF'}")
    sql.run("START SLAVE")


class LocalServer:
    """This member's mariadbd: its data directory, configuration, process and socket."""

    def __init__(self, bin_dir: Path, data_dir: Path, run_dir: Path, engine_user: str | None):
        self.bin_dir, self.data_dir, self.run_dir = bin_dir, data_dir, run_dir
        self.os_user = OsUser(engine_user, {"PATH": "/usr/sbin:/usr/bin:/bin"}, data_dir)
        self.process: subprocess.Popen | None = None
        self.sql = self.own_connection()

    def own_connection(self) -> Sql:
        """A connection over the socket as the agent's OS user (one per thread: Sql is not shared)."""
        return Sql(unix_socket=str(self.socket), user=pwd.getpwuid(os.getuid()).pw_name)

    @property
    def socket(self) -> Path:
        return self.run_dir / SOCKET

    @property
    def config_file(self) -> Path:
        return self.run_dir / CONFIG_FILE

    @property
    def files_dir(self) -> Path:
        """secure_file_priv: SQL's file reads and writes reach only this empty directory."""
        return self.run_dir / "files"

    def installed(self) -> bool:
        return (self.data_dir / "mysql").is_dir()

    def prepare(self, config: str) -> None:
        """The directories, owned by the engine's user, and my.cnf (private: it may hold keys' paths)."""
        for path in (self.run_dir, self.data_dir, self.files_dir):
            path.mkdir(parents=True, exist_ok=True)
            if path.stat().st_uid == os.geteuid() or os.geteuid() == 0:  # not a volume's mount point
                os.chmod(path, 0o700)
            self.os_user.own(path)
        self.os_user.write_private(self.config_file, config)

    def install(self) -> None:
        """The system tables of an empty data directory; root and the engine's OS user (the
        one its tools, mariadb-backup among them, run as) may log in over the socket only
        (unix_socket), no test database, no anonymous users. In a pod the agent runs as that
        user too; elsewhere it runs as root, and logs in as root."""
        socket_user = self.os_user.name
        program = shutil.which("mariadb-install-db", path="/usr/bin:/usr/local/bin:/bin") or "mariadb-install-db"
        done = self.os_user.run([program, f"--defaults-file={self.config_file}", f"--datadir={self.data_dir}",
                                 "--auth-root-authentication-method=socket", f"--auth-root-socket-user={socket_user}",
                                 "--skip-test-db"], timeout=300)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db exited with {done.returncode}: {done.stderr[-2000:]}")

    def start(self) -> None:
        self.process = self.os_user.popen([str(self.bin_dir / "mariadbd"), f"--defaults-file={self.config_file}"])

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL: its next start runs crash recovery, which discards an unacknowledged tail."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.sql.close()

    def stop(self, timeout: float = 60) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
