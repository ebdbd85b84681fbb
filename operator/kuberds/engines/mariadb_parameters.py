"""MariaDB 10.11's parameters: the ones users may set (RDS for MariaDB's modifiable ones that
are safe here), the ones kuberds sets itself, and defaults sized from the instance class.

Names, ranges and defaults are Debian bookworm's mariadbd 10.11 (`mariadbd --verbose --help`;
a minimum or maximum is the value it says it adjusts an out-of-range one to). Where its range
reaches far past any pod, the maximum is a sane one instead. Values are normalised to what
mariadbd reads (bytes, ON/OFF, upper-case names) before they reach the agent. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from kuberds.engines.parameters import MEMORY, NUMBER, Parameter
from kuberds.engines.parameters import problems as allow_problems

MiB = 2**20
GiB = 2**30
DAY = 86400
YEAR = 365 * DAY  # mariadbd's maximum for its timeouts, 31536000 s


def _bytes(name: str, minimum: int, maximum: int) -> Parameter:
    return Parameter(name, "integer", "B", minimum, maximum)


def _int(name: str, minimum: int, maximum: int) -> Parameter:
    return Parameter(name, "integer", None, minimum, maximum)


def _flag(name: str) -> Parameter:
    return Parameter(name, "bool")


SQL_MODES = (
    "REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "IGNORE_BAD_TABLE_OPTIONS",
    "ONLY_FULL_GROUP_BY", "NO_UNSIGNED_SUBTRACTION", "NO_DIR_IN_CREATE", "POSTGRESQL", "ORACLE", "MSSQL", "DB2",
    "MAXDB", "NO_KEY_OPTIONS", "NO_TABLE_OPTIONS", "NO_FIELD_OPTIONS", "MYSQL323", "MYSQL40", "ANSI",
    "NO_AUTO_VALUE_ON_ZERO", "NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES", "STRICT_ALL_TABLES", "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE", "ALLOW_INVALID_DATES", "ERROR_FOR_DIVISION_BY_ZERO", "TRADITIONAL", "NO_AUTO_CREATE_USER",
    "HIGH_NOT_PRECEDENCE", "NO_ENGINE_SUBSTITUTION", "PAD_CHAR_TO_FULL_LENGTH", "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT", "TIME_ROUND_FRACTIONAL",
)  # fmt: skip
CHARSETS = ("utf8mb4", "utf8mb3", "utf8", "latin1", "ascii")
CHARSET_NAMES = {**{c: c for c in CHARSETS}, "utf8": "utf8mb3"}  # 10.11 reads utf8 as utf8mb3
DEFAULT_CHARSET = "utf8mb4"  # what kuberds' my.cnf sets (mariadbd's own default is latin1)

ALLOWED: dict[str, Parameter] = {
    p.name: p
    for p in (
        # Memory, in bytes (B, kB, MB, GB, TB accepted). Per-connection buffers stop at 1 GiB:
        # every connection may allocate one.
        _bytes("innodb_buffer_pool_size", 2 * MiB, 1024 * GiB),
        _bytes("innodb_log_file_size", 4 * MiB, 32 * GiB),
        _bytes("innodb_log_buffer_size", 2 * MiB, GiB),
        _bytes("max_allowed_packet", 16384, GiB),  # less than net_buffer_length, and mariadbd warns
        _bytes("tmp_table_size", 1024, 16 * GiB),
        _bytes("max_heap_table_size", 16384, 16 * GiB),
        _bytes("sort_buffer_size", 1024, GiB),
        _bytes("join_buffer_size", 128, GiB),
        _bytes("read_buffer_size", 8192, GiB),
        _bytes("read_rnd_buffer_size", 1, GiB),
        _bytes("binlog_cache_size", 4096, GiB),
        _bytes("binlog_stmt_cache_size", 4096, GiB),
        _bytes("max_binlog_size", 4096, GiB),
        _bytes("group_concat_max_len", 4, GiB),
        # Counts.
        _int("max_connections", 10, 100_000),
        _int("max_user_connections", 0, 100_000),
        _int("max_connect_errors", 1, 4294967295),
        _int("table_open_cache", 10, 1048576),
        _int("table_definition_cache", 400, 2097152),
        _int("thread_cache_size", 0, 16384),
        _int("innodb_io_capacity", 100, 4294967295),
        _int("innodb_io_capacity_max", 100, 4294967295),
        _int("innodb_read_io_threads", 1, 64),
        _int("innodb_write_io_threads", 2, 64),
        _int("innodb_purge_threads", 1, 32),
        _int("innodb_autoinc_lock_mode", 0, 2),
        _int("innodb_ft_min_token_size", 1, 16),
        _int("innodb_ft_max_token_size", 10, 84),
        _int("ft_min_word_len", 1, 84),
        _int("max_prepared_stmt_count", 0, 4294967295),
        _int("max_sp_recursion_depth", 0, 255),
        _int("max_error_count", 0, 65535),
        _int("auto_increment_increment", 1, 65535),
        _int("auto_increment_offset", 1, 65535),
        _int("div_precision_increment", 0, 38),
        _int("default_week_format", 0, 7),
        _int("min_examined_row_limit", 0, 4294967295),
        _int("optimizer_search_depth", 0, 62),
        _int("slave_parallel_threads", 0, 256),
        _int("log_warnings", 0, 9),
        Parameter("innodb_max_dirty_pages_pct", "real", None, 0, 99.999),
        # Time, in whole seconds (long_query_time and max_statement_time take fractions).
        _int("wait_timeout", 1, YEAR),
        _int("interactive_timeout", 1, YEAR),
        _int("net_read_timeout", 1, YEAR),
        _int("net_write_timeout", 1, YEAR),
        _int("lock_wait_timeout", 0, YEAR),
        _int("innodb_lock_wait_timeout", 0, 100_000_000),
        _int("idle_transaction_timeout", 0, YEAR),
        _int("idle_readonly_transaction_timeout", 0, YEAR),
        _int("idle_write_transaction_timeout", 0, YEAR),
        Parameter("long_query_time", "real", None, 0, YEAR),
        Parameter("max_statement_time", "real", None, 0, YEAR),
        # Switches.
        _flag("slow_query_log"),
        _flag("log_queries_not_using_indexes"),
        _flag("explicit_defaults_for_timestamp"),
        _flag("innodb_print_all_deadlocks"),
        _flag("innodb_strict_mode"),
        _flag("innodb_file_per_table"),
        _flag("innodb_deadlock_detect"),
        _flag("innodb_adaptive_hash_index"),
        _flag("innodb_stats_persistent"),
        _flag("innodb_rollback_on_timeout"),
        _flag("log_bin_trust_function_creators"),  # the master user has no SUPER to create functions without it
        _flag("autocommit"),
        _flag("performance_schema"),
        _flag("userstat"),
        # Names.
        Parameter("character_set_server", "enum", values=CHARSETS),
        Parameter("transaction_isolation", "enum",
                  values=("READ-UNCOMMITTED", "READ-COMMITTED", "REPEATABLE-READ", "SERIALIZABLE")),
        Parameter("event_scheduler", "enum", values=("ON", "OFF")),
        Parameter("log_output", "enum", values=("FILE", "TABLE", "NONE")),
        Parameter("innodb_default_row_format", "enum", values=("REDUNDANT", "COMPACT", "DYNAMIC")),
        # Strings: each has a checker below, so no value brings a newline, '#', quote or '='.
        Parameter("collation_server", "string"),
        Parameter("time_zone", "string"),
        Parameter("sql_mode", "string"),
    )
}  # fmt: skip

# What kuberds sets itself, and why a user's value would break it.
_WHY = {
    **dict.fromkeys(("datadir", "port", "bind_address", "socket", "pid_file", "tmpdir"), "the pod's layout"),
    "server_id": "each member's own, from its ordinal",
    **dict.fromkeys(("log_bin", "log_bin_index", "log_basename", "binlog_format"),
                    "replicas, failover and point-in-time restores read the row binlog"),
    **dict.fromkeys(("binlog_expire_logs_seconds", "expire_logs_days"),
                    "the agent ships binlogs and keeps a few days on the volume"),
    **dict.fromkeys(("sync_binlog", "innodb_flush_log_at_trx_commit"),
                    "a commit is acknowledged only once it is on disk"),
    **dict.fromkeys(("log_slave_updates", "gtid_strict_mode", "gtid_domain_id", "gtid_slave_pos",
                     "gtid_ignore_duplicates"), "failover compares and follows GTID positions"),
    **dict.fromkeys(("relay_log", "relay_log_index", "relay_log_recovery", "skip_slave_start", "init_rpl_role"),
                    "the agent starts and points replication"),
    "read_only": "the agent turns it off on the primary only",
    **dict.fromkeys(("rpl_semi_sync_master_enabled", "rpl_semi_sync_slave_enabled", "rpl_semi_sync_master_timeout",
                     "rpl_semi_sync_master_wait_point", "rpl_semi_sync_master_wait_no_slave"),
                    "Multi-AZ commits wait for a replica's acknowledgement"),
    **dict.fromkeys(("plugin_load", "plugin_load_add", "plugin_dir"), "plugins run code inside the server"),
    **dict.fromkeys(("secure_file_priv", "local_infile"), "the server's files stay out of SQL's reach"),
    **dict.fromkeys(("require_secure_transport", "ssl_ca", "ssl_cert", "ssl_key", "ssl_cipher", "tls_version"),
                    "TLS follows the spec's tls settings"),
    "skip_name_resolve": "accounts name hosts by address, so a DNS outage cannot block logins",
    "log_error": "errors go to the container's log",
}  # fmt: skip
MANAGED: tuple[str, ...] = tuple(_WHY)

# Collations mariadbd 10.11 knows for the allowed character sets (each checked with
# `mariadbd --character-set-server=… --collation-server=… --help`): an unknown one stops it.
_LANGUAGES = ("croatian", "czech", "danish", "esperanto", "estonian", "german2", "hungarian", "icelandic",
              "latvian", "lithuanian", "persian", "polish", "roman", "romanian", "sinhala", "slovak", "slovenian",
              "spanish", "spanish2", "swedish", "turkish", "vietnamese")  # fmt: skip
_UNICODE = ("bin", "nopad_bin", "general_ci", "general_nopad_ci", "unicode_ci", "unicode_nopad_ci", "unicode_520_ci",
            "unicode_520_nopad_ci", "thai_520_w2", "croatian_mysql561_ci", "myanmar_ci",
            *(f"{language}_ci" for language in _LANGUAGES))  # fmt: skip
COLLATIONS = {
    "utf8mb4": _UNICODE,
    "utf8mb3": (*_UNICODE, "general_mysql500_ci"),
    "latin1": ("bin", "nopad_bin", "danish_ci", "general_ci", "general_cs", "german1_ci", "german2_ci",
               "spanish_ci", "swedish_ci", "swedish_nopad_ci"),
    "ascii": ("bin", "nopad_bin", "general_ci", "general_nopad_ci"),
}  # fmt: skip
# 10.10's UCA 14.0 collations: accent and case (in)sensitive, optionally NO PAD and a language.
_UCA1400 = re.compile(rf"^uca1400(?:_(?:{'|'.join(_LANGUAGES)}))?(?:_nopad)?_a[is]_c[is]$")
_COLLATION = re.compile(r"^(utf8mb4|utf8mb3|latin1|ascii)_([a-z0-9_]{2,60})$")
# SYSTEM or an offset: named zones need the time zone tables, which kuberds does not load,
# and mariadbd does not start with a zone it cannot find. Offsets run from -12:59 to +13:00.
_OFFSET = re.compile(r"^([+-])(\d{1,2}):(\d{2})$")


def _collation_problem(value: str) -> str | None:
    match = _COLLATION.fullmatch(value.strip().lower())
    charset, name = match.groups() if match else ("", "")
    if name in COLLATIONS.get(charset, ()) or (charset.startswith("utf8") and _UCA1400.fullmatch(name)):
        return None
    return f"{value!r} is not a collation of {', '.join(COLLATIONS)} that MariaDB 10.11 knows"


def _time_zone_problem(value: str) -> str | None:
    text = value.strip()
    if text.upper() == "SYSTEM":
        return None
    match = _OFFSET.fullmatch(text)
    if match:
        minutes = (int(match.group(2)) * 60 + int(match.group(3))) * (-1 if match.group(1) == "-" else 1)
        if int(match.group(3)) < 60 and -13 * 60 < minutes <= 13 * 60:
            return None
    return f"{value!r} is not SYSTEM or an offset from -12:59 to +13:00 (named zones need tables kuberds does not load)"


def _sql_mode_problem(value: str) -> str | None:
    unknown = [m for m in _modes(value) if m not in SQL_MODES]
    return f"{', '.join(unknown)} is not a MariaDB 10.11 sql_mode" if unknown else None


def _modes(value: str) -> list[str]:
    return [m.strip().upper() for m in value.split(",") if m.strip()]


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "collation_server": _collation_problem,
    "time_zone": _time_zone_problem,
    "sql_mode": _sql_mode_problem,
}


def _base_value(value: str) -> float:
    """A judged number in its parameter's base unit (bytes for memory)."""
    match = NUMBER.match(value)
    number, unit = float(match.group(1)), match.group(2)
    return number * MEMORY[unit] if unit else number


def _value_problem(parameter: Parameter, value: str) -> str | None:
    """What the shared allow-list check does not see: strings' shapes, whole bytes."""
    if parameter.name in _CHECKS:
        return _CHECKS[parameter.name](value)
    if parameter.type == "integer" and not _base_value(value).is_integer():
        return f"{value!r} is not a whole number of {parameter.unit or 'units'}"
    return None


def problems(user: Mapping[str, str], memory_bytes: int | None = None) -> list[str]:
    """One line per parameter refused, naming it: unknown, managed by kuberds, out of range,
    or at odds with another (a collation of another character set, a buffer pool larger than
    the instance class's memory, when that is known)."""
    found = []
    for name, value in user.items():
        key = name.lower()
        if key in _WHY:
            found.append(f"parameters.{name}: kuberds manages it ({_WHY[key]})")
        elif lines := allow_problems(ALLOWED, {name: value}, "mariadb"):
            found += lines
        elif problem := _value_problem(ALLOWED[key], value):
            found.append(f"parameters.{name}: {problem}")
    # Pairs are judged once each value is known to be good.
    return found or _cross_problems(user, memory_bytes)


def _cross_problems(user: Mapping[str, str], memory_bytes: int | None) -> list[str]:
    given = {name.lower(): name for name in user}
    values = normalised(user)
    found = []
    charset = values.get("character_set_server", DEFAULT_CHARSET)
    # A collation of another character set stops mariadbd ("COLLATION … is not valid for …").
    if "collation_server" in values and values["collation_server"].split("_")[0] != CHARSET_NAMES[charset]:
        found.append(f"parameters.{given['collation_server']}: {values['collation_server']} is not a collation "
                     f"of {charset}")  # fmt: skip
    pool = values.get("innodb_buffer_pool_size")
    if pool and memory_bytes and int(pool) > memory_bytes * 9 // 10:
        found.append(f"parameters.{given['innodb_buffer_pool_size']}: {pool} bytes leaves less than a tenth "
                     f"of the instance class's {memory_bytes // MiB} MiB for connections and the server")  # fmt: skip
    return found


def normalised(user: Mapping[str, str]) -> dict[str, str]:
    """Judged values as mariadbd reads them, by lower-case name: bytes as plain integers,
    ON/OFF, upper-case names, sql_mode as one comma list."""
    return {name.lower(): _normalise(ALLOWED[name.lower()], value) for name, value in user.items()}


def _normalise(parameter: Parameter, value: str) -> str:
    text = value.strip()
    if parameter.type == "bool":
        return "ON" if text.lower() in ("1", "on", "true", "yes") else "OFF"
    if parameter.type == "enum":
        return next(v for v in parameter.values if v.lower() == text.lower())
    if parameter.type == "integer":
        return str(int(_base_value(text)))
    if parameter.type == "real":
        return f"{_base_value(text):.6f}".rstrip("0").rstrip(".")
    if parameter.name == "sql_mode":
        return ",".join(_modes(text))
    return text.upper() if parameter.name == "time_zone" else text.lower()


CHUNK = 128 * MiB  # innodb_buffer_pool_chunk_size: the pool grows and shrinks by it
MAX_CONNECTIONS = 5000  # the default's cap: each connection takes threads and buffers


def sized(memory_bytes: int, volume_bytes: int | None = None) -> dict[str, str]:
    """RDS's defaults for MariaDB from the instance class's memory: the buffer pool
    {DBInstanceClassMemory*3/4}, max_connections {DBInstanceClassMemory/12582880},
    table_open_cache LEAST({DBInstanceClassMemory/1179121}, 6000); redo sized with the pool
    (and within an eighth of the volume, which also holds the data and the binlogs)."""
    pool = max(CHUNK, memory_bytes * 3 // 4 // CHUNK * CHUNK)
    redo = min(2 * GiB, max(96 * MiB, pool // 4))
    if volume_bytes:
        redo = min(redo, max(4 * MiB, volume_bytes // 8))
    return {
        "innodb_buffer_pool_size": str(pool),
        "max_connections": str(max(50, min(memory_bytes // 12582880, MAX_CONNECTIONS))),
        "innodb_log_file_size": str(redo // MiB * MiB),
        "table_open_cache": str(max(400, min(memory_bytes // 1179121, 6000))),
        # performance_schema's tables grow with max_connections and table_open_cache: worth
        # their memory from 8 GiB, too much of a small class's below.
        "performance_schema": "ON" if memory_bytes >= 8 * GiB else "OFF",
    }


def parameters(memory_bytes: int, user: Mapping[str, str], volume_bytes: int | None = None) -> dict[str, str]:
    """What the agent's my.cnf tunes: the sized defaults, the user's judged values on top."""
    return {**sized(memory_bytes, volume_bytes), **normalised(user)}


def max_connections(memory_bytes: int, user: Mapping[str, str]) -> int:
    return int(parameters(memory_bytes, user)["max_connections"])
