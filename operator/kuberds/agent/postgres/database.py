"""The agent's SQL on its own PostgreSQL: a superuser connection, the master user and
database, the heartbeat, and what the primary reads for its report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from kuberds.agent.postgres.patroni import SUPERUSER
from kuberds.contract.settings import AgentConfig

# What the master user is granted beside CREATEDB and CREATEROLE (not a superuser, like RDS's
# rds_superuser): it reads and writes all data, watches and signals sessions.
MASTER_ROLES = ("pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend")


@dataclass
class Database:
    """A superuser connection over TCP (password auth works whoever the agent runs as)."""

    port: int
    password: str
    connection: psycopg.Connection | None = None

    def query(self, statement: str | sql.Composable, params: tuple = ()) -> list[tuple]:
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
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


def ensure_accounts(db: Database, config: AgentConfig, master_password: str) -> None:
    """The master user (with the Secret's password), its database, and the heartbeat table."""
    user, name = config.master_username, config.database_name
    exists = db.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
    verb = "ALTER" if exists else "CREATE"
    db.query(sql.SQL("{} ROLE {} WITH LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
        sql.SQL(verb), sql.Identifier(user), sql.Literal(master_password)))  # fmt: skip
    for granted in MASTER_ROLES:
        db.query(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted), sql.Identifier(user)))
    if not db.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
        db.query(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user)))
    db.query("CREATE SCHEMA IF NOT EXISTS kuberds")
    db.query("CREATE TABLE IF NOT EXISTS kuberds.heartbeat (id int PRIMARY KEY, at timestamptz)")


def heartbeat(db: Database) -> tuple[datetime, str]:
    """Commits a heartbeat; its time, and the WAL position after the commit."""
    rows = db.query(
        "INSERT INTO kuberds.heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now() RETURNING at"
    )
    # Read after the commit (autocommit): the position is past the commit record, so a
    # segment counted as archived really holds this heartbeat.
    return rows[0][0], db.query("SELECT pg_current_wal_lsn()::text")[0][0]


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


def reload_configuration(db: Database) -> None:
    db.query("SELECT pg_reload_conf()")
