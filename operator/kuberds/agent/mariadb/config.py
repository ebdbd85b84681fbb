"""my.cnf of a MariaDB 10.11 member, and the agent's own client option file. Pure.

User parameters arrive judged and normalised by the operator (its MariaDB allow-list). Every
value is checked here again, because a my.cnf line is where a newline, a quote, a '#' or a
'=' would change what the server reads: a value with control characters, or with anything
but the characters settings and paths are made of, raises ValueError naming its key. So each
setting is one bare token on a line of its own, and no value can add a line or a section.

Every member starts as a replica: read-only, replication stopped, semi-sync's primary side
off. The agent decides who is primary; on the primary it turns semi-sync's primary side on
(Multi-AZ) before it turns read_only off, and it starts replication on the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kuberds.agent.mariadb.accounts import IDENTIFIER
from kuberds.contract.mariadb import GTID_DOMAIN

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Numbers, names, comma lists, offsets, paths, '*' (any address): no quote, '#', '=', backslash
# or space.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:+\-/*]*$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PATH = re.compile(r"^/[A-Za-z0-9_.\-/]*$")
MAX_SERVER_ID = 2**32 - 1  # mariadbd adjusts 4294967296 down to this
# rpl_semi_sync_master_timeout, in ms: mariadbd 10.11 takes up to 18446744073709551615 (2^64-1;
# one more is "out of range for uint64"). 10^12 ms is 31 years: never, in practice, and far
# enough from the edge that converting it to nanoseconds still fits in a signed 64-bit number.
SEMI_SYNC_TIMEOUT_MS = 10**12
BINLOG_KEEP_SECONDS = 3 * 86400  # the agent ships binlogs; these days stay for replicas that lag
# Names users know from SET GLOBAL whose my.cnf option is spelled otherwise.
OPTION_NAMES = {"time_zone": "default_time_zone"}
# Tuning kuberds chooses and users may change.
DEFAULTS = {"character_set_server": "utf8mb4"}  # mariadbd's compiled default is latin1
# Never from user parameters, whatever the operator let through: these load code, run SQL or
# reach files.
NEVER = frozenset({"plugin_load", "plugin_load_add", "plugin_dir", "plugin_maturity", "init_file", "init_connect",
                   "init_slave", "general_log", "general_log_file", "log_error", "slow_query_log_file", "user",
                   "skip_grant_tables", "skip_networking", "ssl_capath", "ssl_crl", "ssl_crlpath"})  # fmt: skip


@dataclass(frozen=True)
class Tls:
    """Paths of the member's certificate, key and the CA that signed its peers' (None: a
    certificate of the user's without its CA)."""

    ca: str | None
    cert: str
    key: str
    require: bool = False  # require_secure_transport: refuse plain TCP (the socket stays open)


@dataclass(frozen=True)
class MariaDBConfig:
    server_id: int  # the member's ordinal + 1; the agent keeps it unique among servers that replicate
    datadir: str
    socket: str
    pid_file: str
    tmpdir: str
    files_dir: str  # secure_file_priv: an empty directory of its own; mariadbd exits if it is missing
    port: int = 3306
    bind_address: str = "*"  # every IPv4 and IPv6 address of the pod
    tls: Tls | None = None
    semi_sync: bool = False  # Multi-AZ: a commit waits for a replica's acknowledgement
    members: int = 1
    user_parameters: Mapping[str, str] = field(default_factory=dict)  # judged and normalised
    sized_parameters: Mapping[str, str] = field(default_factory=dict)  # from the instance class

    def __post_init__(self) -> None:
        if not 1 <= self.server_id <= MAX_SERVER_ID:
            raise ValueError(f"server_id: {self.server_id} is not from 1 to {MAX_SERVER_ID}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        if self.members < 1 or (self.semi_sync and self.members < 2):
            # A primary waiting for an acknowledgement no replica can send would never commit.
            raise ValueError(f"members: {self.members} cannot {'acknowledge semi-sync' if self.semi_sync else 'run'}")
        paths = {"datadir": self.datadir, "socket": self.socket, "pid_file": self.pid_file, "tmpdir": self.tmpdir,
                 "secure_file_priv": self.files_dir}  # fmt: skip
        if self.tls:
            paths |= {
                "ssl_cert": self.tls.cert,
                "ssl_key": self.tls.key,
                **({"ssl_ca": self.tls.ca} if self.tls.ca else {}),
            }
        for key, path in paths.items():
            _check(key, path)
            if not PATH.fullmatch(path):
                raise ValueError(f"{key}: {path!r} is not an absolute path")


def _switch(on: bool) -> str:
    return "ON" if on else "OFF"


def _layout(s: MariaDBConfig) -> list[tuple[str, str, str]]:
    return [
        ("datadir", s.datadir, "The pod's layout: the data volume, the run directory, the port."),
        ("socket", s.socket, ""),
        ("pid_file", s.pid_file, ""),
        ("tmpdir", s.tmpdir, ""),
        ("port", str(s.port), ""),
        ("bind_address", s.bind_address, ""),
        ("skip_name_resolve", "ON", "Accounts name hosts by address: a DNS outage cannot block logins."),
        ("local_infile", "OFF", "No LOAD DATA LOCAL: a server has no business asking clients for their files."),
        ("secure_file_priv", s.files_dir,
         "File reads and writes from SQL (which need FILE, which no user has) reach only this empty directory."),
    ]  # fmt: skip


def _tls(s: MariaDBConfig) -> list[tuple[str, str, str]]:
    if s.tls is None:
        return []
    ca = [("ssl_ca", s.tls.ca, "The CA that signed the members' certificates.")] if s.tls.ca else []
    return [
        *ca,
        ("ssl_cert", s.tls.cert, "TLS for clients and replication."),
        ("ssl_key", s.tls.key, ""),
        ("tls_version", "TLSv1.2,TLSv1.3", ""),
        ("require_secure_transport", _switch(s.tls.require), "Plain TCP refused when the spec requires TLS."),
    ]


def _replication(s: MariaDBConfig) -> list[tuple[str, str, str]]:
    return [
        ("server_id", str(s.server_id), "Unique per member: replication skips events carrying its own id."),
        ("log_bin", f"{s.datadir}/mariadb-bin", "The binlog, on the data volume: replicas and failover read it, "
         "and the agent ships it for point-in-time restores."),
        ("log_bin_index", f"{s.datadir}/mariadb-bin.index", ""),
        ("binlog_format", "ROW", "Row events replay exactly, whatever the statement's functions returned."),
        ("log_slave_updates", "ON", "A replica logs what it applies, so it can take over as primary."),
        ("gtid_strict_mode", "ON", "A GTID out of order is an error, not a silent divergence."),
        ("gtid_domain_id", str(GTID_DOMAIN), "One writer at a time: one domain."),
        ("sync_binlog", "1", "Durability: a commit is acknowledged once it is on disk in the binlog"),
        ("innodb_flush_log_at_trx_commit", "1", "and in InnoDB's redo log; semi-sync's guarantee rests on both."),
        ("binlog_expire_logs_seconds", str(BINLOG_KEEP_SECONDS),
         "The agent ships binlogs; a few days stay here for lagging replicas."),
        ("relay_log", f"{s.datadir}/relay-bin", "Relay logs beside the data; a restarted replica discards "
         "unapplied ones and refetches from its GTID position."),
        ("relay_log_index", f"{s.datadir}/relay-bin.index", ""),
        ("relay_log_recovery", "ON", ""),
        ("read_only", "ON", "Every member starts as a replica; the agent turns this off on the primary only."),
        ("skip_slave_start", "ON", "The agent starts replication once it knows who the primary is."),
    ]  # fmt: skip


def _semi_sync(s: MariaDBConfig) -> list[tuple[str, str, str]]:
    # init_rpl_role (MDEV-33465, 10.11.9 on; this image's 10.11.19 lists it, MASTER by default):
    # started as SLAVE, crash recovery truncates the binlog transactions InnoDB had not
    # committed instead of committing them. With AFTER_SYNC no client saw those commit, though
    # a replica may have them; the old primary then rejoins as a replica and fetches them
    # again. That is right only with semi-sync, and only because the agent promotes the
    # member with the furthest GTID position, never one that truncated what others have.
    return [
        ("init_rpl_role", "SLAVE" if s.semi_sync else "MASTER",
         "SLAVE with semi-sync: crash recovery drops binlog transactions InnoDB had not committed."),
        ("rpl_semi_sync_slave_enabled", _switch(s.semi_sync),
         "Replicas acknowledge each transaction once it is in their relay log."),
        ("rpl_semi_sync_master_enabled", "OFF",
         "The agent turns this on on the primary: a replica with it on would wait for acknowledgements of "
         "the transactions it applies, and none would come."),
        ("rpl_semi_sync_master_wait_point", "AFTER_SYNC",
         "The primary commits in InnoDB only after a replica has the transaction: no one reads what a "
         "failover could lose."),
        ("rpl_semi_sync_master_timeout", str(SEMI_SYNC_TIMEOUT_MS),
         "Never fall back to asynchronous replication: a commit waits for a replica."),
        ("rpl_semi_sync_master_wait_no_slave", "ON", "Even while no replica is connected."),
    ]  # fmt: skip


def managed_lines(settings: MariaDBConfig) -> list[tuple[str, str, str]]:
    """(name, value, why) of every setting kuberds makes itself, in the file's order."""
    return _layout(settings) + _tls(settings) + _replication(settings) + _semi_sync(settings)


def managed(settings: MariaDBConfig) -> dict[str, str]:
    return {name: value for name, value, _ in managed_lines(settings)}


def tuning(settings: MariaDBConfig) -> dict[str, str]:
    """kuberds' defaults, then the sized parameters, then the user's: by name, checked."""
    taken = set(managed(settings)) | set(OPTION_NAMES.values())
    merged: dict[str, str] = dict(DEFAULTS)
    for source in (settings.sized_parameters, settings.user_parameters):
        for key, value in source.items():
            name = _name(key)
            if name in taken or name in NEVER:
                raise ValueError(f"{key}: kuberds sets it or keeps it unset; a parameter cannot")
            merged[name] = value
    return merged


def _name(key: str) -> str:
    _check(key, key)
    name = key.lower()
    if not NAME.fullmatch(name):
        raise ValueError(f"{key!r}: not a parameter name")
    return name


def _check(key: str, value: str) -> None:
    if CONTROL.search(value):
        raise ValueError(f"{key}: the value has control characters")
    if not SAFE_VALUE.fullmatch(value):
        raise ValueError(f"{key}: {value!r} has characters a my.cnf value cannot carry safely")


def _line(name: str, value: str) -> str:
    _check(name, value)
    option = OPTION_NAMES.get(name, name)
    return f"{option} = {value}" if value else f"{option} ="


def render(settings: MariaDBConfig) -> str:
    """The member's my.cnf: one [mariadbd] section, kuberds' settings in a fixed order with
    why each is there, then the tuning sorted by name."""
    lines = ["# Written by the kuberds agent before each start of this member; changes made here are lost.",
             "# Errors go to stderr, the container's log: log_error is left unset on purpose.",
             "[mariadbd]"]  # fmt: skip
    for name, value, why in managed_lines(settings):
        lines += [f"# {why}"] if why else []
        lines.append(_line(name, value))
    lines.append("# Tuning: kuberds' defaults, sized from the instance class, then the user's parameters.")
    lines += [_line(name, value) for name, value in sorted(tuning(settings).items())]
    return "\n".join(lines) + "\n"


MAX_PASSWORD = 1024  # an option file line is read into a 4 KiB buffer


def client_cnf(user: str, password: str, socket: str) -> str:
    """The agent's [client] option file for its connections over the socket. The password is
    double-quoted with backslash and double quote escaped, which MariaDB's option file reader
    (libmariadb, mysys) undoes; PyMySQL's read_default_file strips the quotes but does not
    unescape, so the agent hands PyMySQL the password itself."""
    if CONTROL.search(password) or len(password) > MAX_PASSWORD:
        raise ValueError(f"password: control characters or longer than {MAX_PASSWORD} characters")
    if not IDENTIFIER.fullmatch(user):
        raise ValueError(f"user: {user!r} is not a MariaDB user name kuberds uses")
    _check("socket", socket)
    quoted = '"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"[client]\nuser = {user}\npassword = {quoted}\nsocket = {socket}\nprotocol = socket\n"
