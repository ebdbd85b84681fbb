"""The accounts of a MariaDB 10.11 server, as SQL statements for a DB-API driver. Pure.

Each statement is (sql, params) in the driver's format paramstyle (PyMySQL's): values go in
params as %s and a literal percent is written %%, for cursor.execute(sql, params). A statement
without params has no percent sign at all, so passing None for them works too. User and host
names are params too
('name'@'host' as string literals); only database names and patterns are SQL text, validated
against a strict pattern and quoted with backticks. Passwords are never SQL text: accounts
are created IDENTIFIED BY PASSWORD with mysql_native_password's stored hash, so neither the
binlog (shipped to object storage, readable with REPLICATION SLAVE), the processlist nor a
general log ever holds a password.

The master user is RDS's, less what would let it break high availability or backups, or
raise itself: RDS gives SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS,
REFERENCES, INDEX, ALTER, SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE,
REPLICATION SLAVE, BINLOG MONITOR, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE,
CREATE USER, EVENT, TRIGGER ON *.* WITH GRANT OPTION. Here:

- RELOAD is left out: it allows RESET MASTER, which deletes every binlog (the backups' and
  the replicas'), and FLUSH BINARY LOGS DELETE_DOMAIN_ID. The master cannot FLUSH, and dumps
  use --single-transaction rather than FLUSH TABLES WITH READ LOCK.
- The `mysql` schema. MariaDB has no partial revokes, so any table privilege on *.* reaches
  mysql.global_priv: INSERT or UPDATE there raises an account to SUPER or FILE at the next
  restart (FILE reads the TLS key and the agent's option file), DROP or ALTER breaks the
  server, and writes to mysql.gtid_slave_pos mislead replication. An exact `mysql` row beside
  a `%` one would not hold either: with GRANT OPTION on `%` the master could grant another
  account `m%`, which covers `mysql`. So the data privileges are granted per database
  pattern, on patterns that match every name but `mysql` and `sys` (whose routines, such as
  execute_prepared_stmt, are mariadb.sys's: ALTER ROUTINE ... SQL SECURITY DEFINER would run
  any SQL as it, and it may read and delete mysql.global_priv): names of any length but 3 and 5,
  and names of 3 or 5 characters that differ from "sys" or "mysql" in some position, in a
  letter (either case), digit, '_', '$' or '-'. A pattern is only ever granted onward as a
  narrower pattern, so no grant the master makes reaches `mysql` or `sys`. This holds because
  lower_case_table_names stays 0 (not a parameter users may set). What it costs: the master's
  SHOW GRANTS lists some 500 patterns, and a name of 3 or 5 characters that differs from "sys"
  or "mysql" only in case (`MySQL`) or only in characters outside that set is a database it
  cannot use; bootstrap refuses such a name.
- Left out as well: SUPER (SET GLOBAL anything, change replication), FILE (read and write the
  server's files), SHUTDOWN (stop the server under the agent), READ_ONLY ADMIN (write on a
  replica, or turn read_only off: two primaries), BINLOG ADMIN (PURGE BINARY LOGS, change
  sync_binlog or binlog_format), BINLOG REPLAY (replay events into any table),
  REPLICATION SLAVE ADMIN and REPLICATION MASTER ADMIN (repoint or stop replication, change
  server_id, the GTID state or semi-sync), CONNECTION ADMIN (kill the agent's connections,
  take the last connection, change init_connect), SET USER (create objects as another
  definer), FEDERATED ADMIN (connections out of the server), CREATE TABLESPACE.
- Kept: CREATE USER and GRANT OPTION. The master can grant only what it has, so it can raise
  no one above itself. But MariaDB 10.11 has no protected accounts (MySQL's SYSTEM_USER):
  CREATE USER can alter or drop any account, kuberds' own and mysql@localhost included. The
  agent checks its accounts and restores them (an init file at the next start, if need be);
  that is its job, not something grants prevent.

root@localhost and mysql@localhost log in by unix_socket only, as the OS users of those
names: no one in the pod runs as root; mariadbd and the agent run as mysql, and the agent
does what its own account may not (bootstrap, restoring accounts, rotating passwords) as
mysql@localhost over the socket.
"""

from __future__ import annotations

import hashlib
import re
import string

from kuberds.contract.mariadb import AGENT_USER, REPLICATION_USER

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
Statement = tuple[str, tuple[str, ...]]

BACKUP_USER = "kuberds_backup"
MONITOR_USER = "kuberds_monitor"
RESERVED_PREFIX = "kuberds_"
RESERVED_DATABASES = ("mysql", "information_schema", "performance_schema", "sys")
SYSTEM_SCHEMAS = ("mysql", "sys")  # what the master's patterns leave out (distinct lengths)

MASTER_GLOBAL = ("PROCESS", "SHOW DATABASES", "CREATE USER", "REPLICATION SLAVE", "BINLOG MONITOR", "SLAVE MONITOR")
MASTER_DATABASE = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
                   "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE",
                   "ALTER ROUTINE", "EVENT", "TRIGGER", "DELETE HISTORY")  # fmt: skip
WITHHELD = ("SUPER", "FILE", "SHUTDOWN", "RELOAD", "READ_ONLY ADMIN", "BINLOG ADMIN", "BINLOG REPLAY",
            "REPLICATION SLAVE ADMIN", "REPLICATION MASTER ADMIN", "CONNECTION ADMIN", "SET USER", "FEDERATED ADMIN",
            "CREATE TABLESPACE")  # fmt: skip
# Replicas only read the binlog: a leaked replication password gives nothing the master lacks.
REPLICATION = ("REPLICATION SLAVE",)
# The HA agent, on its own member over the socket and on peers over TCP:
AGENT = (
    "READ_ONLY ADMIN",  # turn read_only off on the primary, on on the others
    "REPLICATION SLAVE ADMIN",  # CHANGE MASTER, START/STOP SLAVE, gtid_slave_pos, semi-sync's replica side
    "REPLICATION MASTER ADMIN",  # semi-sync's primary side, SHOW SLAVE HOSTS
    "BINLOG MONITOR",  # gtid_binlog_pos, SHOW BINARY LOGS: what to ship, who is furthest
    "SLAVE MONITOR",  # SHOW SLAVE STATUS
    "BINLOG ADMIN",  # PURGE BINARY LOGS once shipped, when the volume runs short
    "RELOAD",  # FLUSH BINARY LOGS: close the binlog to ship it
    "PROCESS",  # see the replication threads and the sessions waiting for semi-sync
    "CONNECTION ADMIN",  # kill writers on a demoted primary; log in when max_connections is reached
)
# No SUPER: every split privilege the agent uses is named above. What SUPER would add in 10.11
# is SET GLOBAL of the remaining variables; the agent changes those in my.cnf and restarts.
# No SHUTDOWN: the agent stops its own child process with a signal. No CREATE USER: accounts
# are administered as mysql@localhost.
BACKUP = ("RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR", "SLAVE MONITOR")  # what mariadb-backup checks
MONITOR = ("PROCESS", "BINLOG MONITOR", "SLAVE MONITOR")  # plus SELECT on performance_schema
MONITOR_CONNECTIONS = 3
# Characters enumerated for the patterns of 3 and 5 characters.
ALPHABET = string.ascii_letters + string.digits + "_$-"


def quote_identifier(name: str) -> str:
    """`name`, for a name of letters, digits and '_' that starts with no digit, 32 at most."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not an identifier kuberds quotes: [A-Za-z_][A-Za-z0-9_]{{0,31}}")
    return f"`{name}`"


def reserved_users() -> tuple[str, ...]:
    """Names the server, its tooling, RDS habits and kuberds own: no user may take them."""
    return ("root", "mysql", "mariadb.sys", "PUBLIC", "none", "rdsadmin", "rdsrepladmin", REPLICATION_USER,
            AGENT_USER, BACKUP_USER, MONITOR_USER)  # fmt: skip


def is_reserved_user(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(RESERVED_PREFIX) or lowered in {n.lower() for n in reserved_users()}


def password_hash(password: str) -> str:
    """mysql_native_password's stored form, what PASSWORD() returns: '*' and the upper-case
    hex of SHA1(SHA1(password)), the password taken as UTF-8 like a utf8mb4 connection's."""
    if not password or "\x00" in password:
        raise ValueError("a password is not empty and has no NUL")
    inner = hashlib.sha1(password.encode()).digest()  # SHA-1: the protocol's, not a choice
    return "*" + hashlib.sha1(inner).hexdigest().upper()


def _literal(char: str) -> str:
    return "\\_" if char == "_" else char  # '_' is itself a wildcard


def master_database_patterns() -> tuple[str, ...]:
    """LIKE patterns that together match every database name but the system schemas'."""
    lengths = {len(name): name for name in SYSTEM_SCHEMAS}
    patterns = []
    for length in range(1, max(lengths) + 1):
        name = lengths.get(length)
        if name is None:
            patterns.append("_" * length)
            continue
        for i, own in enumerate(name):  # differs from `name` in position i
            patterns += ["_" * i + _literal(c) + "_" * (length - i - 1) for c in ALPHABET if c.lower() != own]
    return (*patterns, "_" * (max(lengths) + 1) + "%")


def like(pattern: str, name: str) -> bool:
    """Whether a database-level grant on `pattern` covers database `name` (case-sensitive,
    as with lower_case_table_names=0)."""
    tokens = re.findall(r"\\.|.", pattern, re.S)  # an escaped character is one token
    regex = "".join(".*" if t == "%" else "." if t == "_" else re.escape(t[-1]) for t in tokens)
    return re.fullmatch(regex, name, re.S) is not None


def covered(name: str) -> bool:
    """Whether the master's patterns give it `name`."""
    return any(like(pattern, name) for pattern in master_database_patterns())


def _pattern_sql(pattern: str) -> str:
    return "`" + pattern.replace("%", "%%") + "`"  # %% for the driver's formatting


def _account(user: str, host: str, password: str, extra: str = "") -> Statement:
    return f"CREATE OR REPLACE USER %s@%s IDENTIFIED BY PASSWORD %s{extra}", (user, host, password_hash(password))


def _grant(privileges: tuple[str, ...], level: str, user: str, host: str, option: bool = False) -> Statement:
    return f"GRANT {', '.join(privileges)} ON {level} TO %s@%s{' WITH GRANT OPTION' if option else ''}", (user, host)


def hardening() -> list[Statement]:
    """No anonymous users, no test database, root and mysql by unix_socket on localhost only.
    Run on every member, unlogged: the system tables mariadb-install-db writes differ between
    members (proxies_priv names the host it ran on), so their row events would not apply on
    another member."""
    return [
        ("DELETE FROM mysql.global_priv WHERE User = %s", ("",)),
        ("DELETE FROM mysql.global_priv WHERE User = %s AND Host <> %s", ("root", "localhost")),
        ("DELETE FROM mysql.db WHERE Db = %s OR Db = %s", ("test", "test\\_%")),
        ("DELETE FROM mysql.proxies_priv WHERE Host <> %s", ("localhost",)),
        ("FLUSH PRIVILEGES", ()),
        ("DROP DATABASE IF EXISTS test", ()),
        ("ALTER USER IF EXISTS %s@%s IDENTIFIED VIA unix_socket", ("root", "localhost")),
        ("ALTER USER IF EXISTS %s@%s IDENTIFIED VIA unix_socket", ("mysql", "localhost")),
    ]


def master(user: str, password: str) -> list[Statement]:
    if is_reserved_user(user):
        raise ValueError(f"{user!r} is reserved: root, mysql, mariadb.sys, rdsadmin and kuberds_* are not the master's")
    quote_identifier(user)
    statements = [_account(user, "%", password), _grant(MASTER_GLOBAL, "*.*", user, "%", option=True)]
    statements += [_grant(MASTER_DATABASE, f"{_pattern_sql(p)}.*", user, "%", option=True)
                   for p in master_database_patterns()]  # fmt: skip
    # The slow log, when log_output is TABLE: one table of the mysql schema, read only.
    return [*statements, _grant(("SELECT",), "`mysql`.`slow_log`", user, "%")]


def database(name: str) -> list[Statement]:
    if name.lower() in RESERVED_DATABASES or not covered(name):
        raise ValueError(f"{name!r} is a system schema's name or a case variant of one")
    return [(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)}", ())]


def service_accounts(replication_password: str, agent_password: str, backup_password: str | None = None,
                     monitor_password: str | None = None) -> list[Statement]:  # fmt: skip
    """kuberds' own: replication from any pod, the agent on its socket and from peers, backups
    and metrics on the socket only."""
    statements = [_account(REPLICATION_USER, "%", replication_password),
                  _grant(REPLICATION, "*.*", REPLICATION_USER, "%")]  # fmt: skip
    for host in ("localhost", "%"):
        statements += [_account(AGENT_USER, host, agent_password), _grant(AGENT, "*.*", AGENT_USER, host)]
    if backup_password is not None:
        statements += [_account(BACKUP_USER, "localhost", backup_password),
                       _grant(BACKUP, "*.*", BACKUP_USER, "localhost")]  # fmt: skip
    if monitor_password is not None:
        statements += [_account(MONITOR_USER, "localhost", monitor_password,
                                f" WITH MAX_USER_CONNECTIONS {MONITOR_CONNECTIONS}"),
                       _grant(MONITOR, "*.*", MONITOR_USER, "localhost"),
                       _grant(("SELECT",), "`performance_schema`.*", MONITOR_USER, "localhost")]  # fmt: skip
    return statements


def bootstrap(master_user: str, master_password: str, database_name: str | None, replication_password: str,
              agent_password: str, *, backup_password: str | None = None,
              monitor_password: str | None = None) -> list[Statement]:  # fmt: skip
    """Everything a new server needs, run once by the agent as mysql@localhost over the socket
    on the first primary (replicas are cloned from it, accounts included). Re-runnable:
    accounts are created or replaced, the database created if missing."""
    statements = service_accounts(replication_password, agent_password, backup_password, monitor_password)
    statements += master(master_user, master_password)
    return statements + (database(database_name) if database_name is not None else [])
