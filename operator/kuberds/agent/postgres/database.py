"""The agent's SQL on its own PostgreSQL: a superuser connection, the master user and
database, the heartbeat, and what the primary reads for its report."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from kuberds.agent.postgres import roles
from kuberds.agent.postgres.patroni import REPLICATION_USER, REWIND_USER, SUPERUSER
from kuberds.contract.proxy import LOOKUP_FUNCTION, PROXY_USER
from kuberds.contract.settings import AgentConfig

# What the master user is granted beside CREATEDB (not a superuser, like RDS's rds_superuser):
# it reads and writes all data, watches and signals sessions. No CREATEROLE: on PostgreSQL 15
# that would let it grant itself pg_execute_server_program; it manages roles through
# kuberds.create_role() and its siblings instead (roles.py).
MASTER_ROLES = ("pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend")
SCRAM_ITERATIONS = 4096


@dataclass
class Database:
    """A superuser connection, on the local socket in a pod (the superuser may not log in over
    TCP there); by password, which works whoever the agent runs as."""

    port: int
    password: str
    dbname: str = "postgres"
    socket_dir: Path | None = None  # the superuser may log in on the socket only
    connection: psycopg.Connection | None = None

    def query(self, statement: str | sql.Composable, params: tuple = ()) -> list[tuple]:
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(host=str(self.socket_dir or "127.0.0.1"), port=self.port, user=SUPERUSER,
                                              password=self.password, dbname=self.dbname, autocommit=True,
                                              connect_timeout=3)  # fmt: skip
        try:
            with self.connection.cursor() as cursor:
                # Without parameters the text is sent as is: several statements, `%` left alone.
                cursor.execute(statement, params or None)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def pgpass_line(user: str, password: str) -> str:
    """A ~/.pgpass line for every host, port and database (':' and '\\' escaped)."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{user}:{escaped}\n"


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str | None:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), so the password
    itself never travels in a statement a log could keep. None for a password SASLprep could
    change (outside printable ASCII): PostgreSQL then hashes it itself."""
    if not password or not all(" " <= c <= "~" for c in password):
        return None
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def text(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{text(salt)}${text(stored_key)}:{text(server_key)}"


def scram_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored verifier is this password's (its own salt and iterations)."""
    try:
        method, rest = (verifier or "").split("$", 1)
        iterations, salt = rest.split("$", 1)[0].split(":", 1)
        again = scram_verifier(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return method == "SCRAM-SHA-256" and again is not None and hmac.compare_digest(again, verifier)


def ensure_login(db: Database, role: str, password: str, attributes: str) -> None:
    """Creates the role, or brings it to `attributes`; its verifier changes only with its
    password. A new salt for the same password would change nothing for clients, but it
    would for the proxy: PgBouncer logs in to the server with the keys of its clients' own
    exchange, which a new salt invalidates (clients would wait on a pool that cannot log in)."""
    rows = db.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
    statement = sql.SQL("{} ROLE {} WITH " + attributes).format(
        sql.SQL("ALTER" if rows else "CREATE"), sql.Identifier(role))  # fmt: skip
    if not rows or not scram_matches(rows[0][0], password):
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(scram_verifier(password) or password))
    db.query(statement)


# What pg_rewind reads on the source (a member that is primary now), and nothing else.
REWIND_FUNCTIONS = ("pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)", "pg_read_binary_file(text)",
                    "pg_read_binary_file(text, bigint, bigint, boolean)")  # fmt: skip


def ensure_rewind_user(db: Database, password: str) -> None:
    """pg_rewind's own login: the superuser never logs in over the network."""
    ensure_login(db, REWIND_USER, password, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION")
    for function in REWIND_FUNCTIONS:
        db.query(
            sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.{} TO {}").format(
                sql.SQL(function), sql.Identifier(REWIND_USER)
            )
        )


# The proxy's password lookup: the verifier of a login role that is none of kuberds' own and
# holds none of the rights kuberds keeps (roles.py), so no client reaches those by the proxy.
PROXY_LOOKUP = """
CREATE SCHEMA IF NOT EXISTS kuberds;
REVOKE ALL ON SCHEMA kuberds FROM PUBLIC;
GRANT USAGE ON SCHEMA kuberds TO {proxy};
CREATE OR REPLACE FUNCTION {function}(user_name text, OUT usename name, OUT passwd text) RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
    SELECT rolname, rolpassword FROM pg_authid
    WHERE rolname = user_name AND rolcanlogin AND NOT rolsuper AND NOT rolreplication AND NOT rolbypassrls
      AND oid >= {first_normal_oid} AND rolname <> ALL ({kept})
      AND (rolvaliduntil IS NULL OR rolvaliduntil > now())
$body$;
REVOKE ALL ON FUNCTION {function}(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {function}(text) TO {proxy};
"""


def kept_roles(master: str) -> list[str]:
    """The roles kuberds itself uses, which the master user's role functions refuse."""
    return [SUPERUSER, REPLICATION_USER, REWIND_USER, PROXY_USER, master]


def ensure_proxy_login(db: Database, password: str, master: str) -> None:
    """The proxy's login, and its lookup in every database a client can connect to (template1
    too, so a database created from it has the lookup at once)."""
    ensure_login(db, PROXY_USER, password, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    kept = [k for k in kept_roles(master) if k != master]
    statements = sql.SQL(PROXY_LOOKUP).format(
        proxy=sql.Identifier(PROXY_USER),
        function=sql.SQL(LOOKUP_FUNCTION),
        first_normal_oid=sql.Literal(roles.FIRST_NORMAL_OID),
        kept=sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(k) for k in kept)),
    )
    for (name,) in db.query("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname"):
        other = Database(db.port, db.password, name, db.socket_dir)
        try:
            other.query(statements)
        finally:
            other.close()


def ensure_accounts(db: Database, config: AgentConfig, master_password: str, rewind_password: str | None = None,
                    proxy_password: str | None = None) -> None:  # fmt: skip
    """The master user (with the Secret's password), its database, the role functions it
    manages roles with, pg_rewind's user, the proxy's login, and the heartbeat table."""
    user, name = config.master_username, config.database_name
    # The session's statements are not logged, whatever log_statement users set: the
    # password (or its verifier) goes by below.
    db.query("SET log_statement = 'none'")
    ensure_login(db, user, master_password, "LOGIN CREATEDB NOCREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS")
    for granted in MASTER_ROLES:
        db.query(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(user)))
    if not db.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
        db.query(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user)))
    kept = kept_roles(user)
    db.query(roles.functions(user, kept))
    app = Database(db.port, db.password, name, db.socket_dir)
    try:
        app.query(roles.functions(user, kept))
    finally:
        app.close()
    if rewind_password:
        ensure_rewind_user(db, rewind_password)
    if proxy_password:
        ensure_proxy_login(db, proxy_password, user)
    db.query("CREATE SCHEMA IF NOT EXISTS kuberds")
    db.query("CREATE TABLE IF NOT EXISTS kuberds.heartbeat (id int PRIMARY KEY, at timestamptz)")


def heartbeat(db: Database) -> tuple[datetime, str]:
    """Commits a heartbeat; its time, and the WAL position after the commit.

    The commit does not wait for a synchronous standby: with strict synchronous commit and
    every standby gone it would wait for good, and the agent's loop with it."""
    db.query("BEGIN; SET LOCAL synchronous_commit TO local; INSERT INTO kuberds.heartbeat VALUES (1, now())"
             " ON CONFLICT (id) DO UPDATE SET at = now(); COMMIT")  # fmt: skip
    # Read after the commit: the position is past the commit record, so a segment counted as
    # archived really holds this heartbeat.
    rows = db.query("SELECT at, pg_current_wal_lsn()::text FROM kuberds.heartbeat WHERE id = 1")
    return rows[0][0], rows[0][1]


def archiver(db: Database) -> tuple:
    """pg_stat_archiver: last archived file and time, last failure time, failures, and the
    file being written now."""
    return db.query(
        "SELECT last_archived_wal, last_archived_time, last_failed_time, failed_count,"
        " pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver"
    )[0]


def replication_lag(db: Database) -> int:
    """Bytes the slowest standby has still to replay (0 without standbys)."""
    rows = db.query(
        "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint FROM pg_stat_replication"
    )
    return int(rows[0][0])


# A walreceiver that heard from its source this recently is streaming (the source's
# wal_sender sends a keepalive at least every wal_sender_timeout / 2; PostgreSQL's default
# wal_receiver_status_interval is 10 s).
STREAMING_WITHIN_SECONDS = 15


def replica_lag(db: Database) -> tuple[float | None, bool]:
    """A replica's lag behind its source in seconds, and whether it streams now.

    Caught up (streaming, everything received is replayed): 0. Otherwise the age of the
    newest thing it replayed that carries the source's clock: the source agent's heartbeat
    (committed every few seconds, so an idle source does not read as lag) or the last
    replayed commit, whichever is newer. None: nothing replayed carries a time yet."""
    streaming, replayed_all = db.query(
        "SELECT coalesce((SELECT status = 'streaming' AND last_msg_receipt_time > now() - make_interval(secs => %s)"
        " FROM pg_stat_wal_receiver), false),"
        " coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false)",
        (STREAMING_WITHIN_SECONDS,),
    )[0]
    heartbeat = "(SELECT at FROM kuberds.heartbeat WHERE id = 1)"
    if db.query("SELECT to_regclass('kuberds.heartbeat') IS NULL")[0][0]:
        heartbeat = "NULL::timestamptz"  # not a kuberds source: its commits alone tell the time
    age = db.query(f"SELECT extract(epoch FROM now() - greatest(pg_last_xact_replay_timestamp(), {heartbeat}))::float8")
    age = age[0][0]
    if streaming and replayed_all:
        return 0.0, True
    return (max(0.0, round(float(age), 1)) if age is not None else None), streaming


def client_connections(db: Database) -> int:
    """Client sessions open now, the superuser's (the agent's, Patroni's) left out."""
    return db.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    " AND usename IS DISTINCT FROM current_user")[0][0]  # fmt: skip


def reload_configuration(db: Database) -> None:
    db.query("SELECT pg_reload_conf()")
