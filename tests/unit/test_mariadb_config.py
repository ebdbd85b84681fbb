"""MariaDB 10.11: the parameters users may set, the member's my.cnf, and its accounts."""

from __future__ import annotations

import re

import pytest

from kuberds.agent.mariadb import accounts
from kuberds.agent.mariadb.config import (
    SEMI_SYNC_TIMEOUT_MS,
    MariaDBConfig,
    Tls,
    client_cnf,
    managed,
    render,
)
from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.engines import mariadb_parameters as params
from kuberds.quantity import to_bytes

MiB, GiB = 2**20, 2**30


def member(**kw) -> MariaDBConfig:
    base = {"server_id": 2, "datadir": "/var/lib/mysql/data", "socket": "/run/mariadb/mariadb.sock",
            "pid_file": "/run/mariadb/mariadb.pid", "tmpdir": "/tmp", "files_dir": "/var/lib/mysql/files"}  # fmt: skip
    return MariaDBConfig(**{**base, **kw})


def settings(text: str) -> dict[str, str]:
    """The [mariadbd] options as name → value, comments left out."""
    lines = [line for line in text.splitlines() if line and not line.startswith(("#", "["))]
    return dict(line.split(" =", 1) for line in lines)


def values(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in settings(text).items()}


# --- my.cnf ---------------------------------------------------------------------------------


def test_every_managed_line_is_rendered_with_its_value() -> None:
    tls = Tls("/etc/kuberds/tls/ca.crt", "/etc/kuberds/tls/tls.crt", "/etc/kuberds/tls/tls.key", require=True)
    text = render(member(semi_sync=True, members=3, tls=tls))
    got = values(text)
    assert text.startswith("# Written by the kuberds agent") and "\n[mariadbd]\n" in text
    expected = {
        "server_id": "2", "log_bin": "/var/lib/mysql/data/mariadb-bin",
        "log_bin_index": "/var/lib/mysql/data/mariadb-bin.index", "binlog_format": "ROW", "log_slave_updates": "ON",
        "gtid_strict_mode": "ON", "gtid_domain_id": "0", "sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1",
        "relay_log": "/var/lib/mysql/data/relay-bin", "relay_log_recovery": "ON", "read_only": "ON",
        "skip_slave_start": "ON", "init_rpl_role": "SLAVE", "rpl_semi_sync_slave_enabled": "ON",
        "rpl_semi_sync_master_enabled": "OFF", "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
        "rpl_semi_sync_master_timeout": str(SEMI_SYNC_TIMEOUT_MS), "rpl_semi_sync_master_wait_no_slave": "ON",
        "local_infile": "OFF", "secure_file_priv": "/var/lib/mysql/files", "skip_name_resolve": "ON",
        "character_set_server": "utf8mb4", "binlog_expire_logs_seconds": str(3 * 86400),
        "datadir": "/var/lib/mysql/data", "socket": "/run/mariadb/mariadb.sock", "port": "3306",
        "bind_address": "*", "ssl_ca": "/etc/kuberds/tls/ca.crt", "ssl_cert": "/etc/kuberds/tls/tls.crt",
        "ssl_key": "/etc/kuberds/tls/tls.key", "require_secure_transport": "ON", "tls_version": "TLSv1.2,TLSv1.3",
    }  # fmt: skip
    assert {name: got.get(name) for name in expected} == expected
    assert "log_error" not in got  # unset: errors go to stderr
    assert 10**9 < SEMI_SYNC_TIMEOUT_MS <= 2**64 - 1 and SEMI_SYNC_TIMEOUT_MS * 10**6 < 2**63


def test_each_managed_line_says_why() -> None:
    lines = render(member(semi_sync=True, members=2)).splitlines()
    for name in ("server_id", "sync_binlog", "read_only", "init_rpl_role", "rpl_semi_sync_master_timeout"):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ="))
        assert lines[at - 1].startswith("# "), name


def test_without_semi_sync_or_tls_the_member_starts_plainly() -> None:
    got = values(render(member()))
    assert got["init_rpl_role"] == "MASTER" and got["rpl_semi_sync_slave_enabled"] == "OFF"
    assert got["rpl_semi_sync_master_enabled"] == "OFF" and got["read_only"] == "ON"
    assert not {"ssl_ca", "ssl_cert", "ssl_key", "require_secure_transport"} & set(got)


def test_semi_sync_needs_a_replica_to_acknowledge() -> None:
    with pytest.raises(ValueError, match="members"):
        member(semi_sync=True, members=1)


@pytest.mark.parametrize("server_id", [0, 2**32])
def test_server_ids_stay_in_mariadbs_range(server_id: int) -> None:
    with pytest.raises(ValueError, match="server_id"):
        member(server_id=server_id)


def test_the_rendering_is_deterministic_and_user_parameters_come_last_sorted() -> None:
    user = params.normalised({"max_connections": "500", "slow_query_log": "on", "time_zone": "+05:30"})
    config = member(user_parameters=user, sized_parameters=params.sized(GiB))
    text = render(config)
    assert text == render(member(user_parameters=dict(reversed(user.items())), sized_parameters=params.sized(GiB)))
    got = values(text)
    assert got["max_connections"] == "500" and got["slow_query_log"] == "ON"  # the user's over the sized one
    assert got["innodb_buffer_pool_size"] == str(768 * MiB) and got["default_time_zone"] == "+05:30"
    tuning = text.split("# Tuning")[1].splitlines()[1:]
    assert tuning == sorted(tuning, key=lambda line: line.replace("default_time_zone", "time_zone"))


@pytest.mark.parametrize(
    ("key", "value"),
    [("sql_mode", "ANSI\n[client]"), ("sql_mode", "ANSI\r"), ("collation_server", "utf8mb4_bin\x00"),
     ("max_connections", "10 # comment"), ("max_connections", '"10"'), ("time_zone", "+00:00\ninit_file=/x"),
     ("sql_mode", "ANSI=1"), ("sql_mode", "AN\\SI")],
)  # fmt: skip
def test_values_that_would_change_the_file_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}:"):
        render(member(user_parameters={key: value}))


@pytest.mark.parametrize("key", ["server_id", "read_only", "log_bin", "sync_binlog", "default_time_zone", "init_file",
                                 "plugin_load_add", "max_connections\n[client]", "Skip-Slave-Start"])  # fmt: skip
def test_parameters_cannot_set_what_kuberds_manages_or_forbids(key: str) -> None:
    with pytest.raises(ValueError):
        render(member(user_parameters={key: "1"}))


def test_paths_are_absolute_and_plain() -> None:
    with pytest.raises(ValueError, match="datadir"):
        member(datadir="data")
    with pytest.raises(ValueError, match="tmpdir"):
        member(tmpdir="/tmp\n[client]")


def test_every_line_kuberds_manages_is_refused_in_user_parameters() -> None:
    config = member(semi_sync=True, members=2, tls=Tls("/t/ca", "/t/crt", "/t/key"))
    assert set(managed(config)) <= set(params.MANAGED)
    assert not set(params.MANAGED) & set(params.ALLOWED)


def option_file_value(line: str) -> str:
    """What MariaDB's option file reader makes of `key = "value"` (mysys/libmariadb)."""
    raw = line.split("=", 1)[1].strip()
    assert raw[0] == raw[-1] == '"'
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", '"': '"', "'": "'", "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), raw[1:-1])


@pytest.mark.parametrize("password", ["plain", 'quo"te', "back\\slash", "hash#not a comment", "'single'", "end\\"])
def test_the_client_file_quotes_the_password_so_mariadb_reads_it_back(password: str) -> None:
    text = client_cnf("kuberds_agent", password, "/run/mariadb/mariadb.sock")
    line = next(line for line in text.splitlines() if line.startswith("password"))
    assert text.startswith("[client]\n") and option_file_value(line) == password
    assert "socket = /run/mariadb/mariadb.sock" in text


@pytest.mark.parametrize("password", ["two\nlines", "cr\r", "nul\x00", "x" * 1025])
def test_the_client_file_refuses_passwords_it_cannot_write(password: str) -> None:
    with pytest.raises(ValueError, match="password"):
        client_cnf("kuberds_agent", password, "/run/mariadb/mariadb.sock")


# --- sizing ---------------------------------------------------------------------------------


def test_sizing_follows_rds_for_a_t3_micro_and_an_r6_large() -> None:
    micro = to_bytes(DB_INSTANCE_CLASSES["db.t3.micro"].memory)
    large = to_bytes(DB_INSTANCE_CLASSES["db.r6.large"].memory)
    assert (micro, large) == (GiB, 16 * GiB)
    assert params.sized(micro)["innodb_buffer_pool_size"] == str(768 * MiB)  # 3/4, in 128 MiB chunks
    assert params.sized(large)["innodb_buffer_pool_size"] == str(12 * GiB)
    assert params.max_connections(micro, {}) == 85  # 1 GiB / 12582880
    assert params.max_connections(large, {}) == 1365
    assert params.sized(micro)["performance_schema"] == "OFF" and params.sized(large)["performance_schema"] == "ON"
    assert params.sized(micro)["table_open_cache"] == "910" and params.sized(large)["table_open_cache"] == "6000"


def test_sizing_has_floors_and_caps() -> None:
    small = params.sized(256 * MiB)
    assert small["innodb_buffer_pool_size"] == str(128 * MiB) and small["max_connections"] == "50"
    huge = params.sized(512 * GiB, volume_bytes=4 * GiB)
    assert huge["max_connections"] == "5000" and huge["innodb_log_file_size"] == str(512 * MiB)
    assert int(params.sized(3 * GiB + 100 * MiB)["innodb_buffer_pool_size"]) % (128 * MiB) == 0


def test_the_users_max_connections_wins() -> None:
    assert params.max_connections(GiB, {"max_connections": "300"}) == 300
    assert params.parameters(GiB, {"innodb_buffer_pool_size": "512MB"})["innodb_buffer_pool_size"] == str(512 * MiB)


# --- the allow-list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_connections", "10"), ("max_connections", "100000"), ("innodb_buffer_pool_size", "1GB"),
     ("innodb_buffer_pool_size", "805306368"), ("wait_timeout", "600"), ("long_query_time", "0.25"),
     ("slow_query_log", "on"), ("transaction_isolation", "read-committed"), ("character_set_server", "latin1"),
     ("collation_server", "utf8mb4_unicode_520_ci"), ("collation_server", "utf8mb4_uca1400_swedish_nopad_as_cs"),
     ("time_zone", "+05:30"), ("time_zone", "-12:59"), ("time_zone", "SYSTEM"), ("time_zone", "+13:00"),
     ("sql_mode", "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"), ("sql_mode", ""), ("Max_Allowed_Packet", "64MB"),
     ("explicit_defaults_for_timestamp", "OFF"), ("innodb_lock_wait_timeout", "0"), ("max_binlog_size", "256MB")],
)  # fmt: skip
def test_values_mariadb_takes_are_taken(name: str, value: str) -> None:
    assert params.problems({name: value}) == []


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [("general_log", "ON", "not a mariadb parameter users may set"),
     ("init_connect", "SET x=1", "not a mariadb parameter"), ("max-connections", "100", "not a mariadb parameter"),
     ("server_id", "7", "kuberds manages it (each member's own"),
     ("innodb_flush_log_at_trx_commit", "2", "kuberds manages it (a commit is acknowledged only once"),
     ("sync_binlog", "0", "kuberds manages it"), ("read_only", "OFF", "kuberds manages it"),
     ("binlog_format", "STATEMENT", "kuberds manages it"), ("gtid_domain_id", "1", "kuberds manages it"),
     ("rpl_semi_sync_master_timeout", "10", "kuberds manages it"), ("local_infile", "ON", "kuberds manages it"),
     ("max_connections", "5", "below the minimum, 10"), ("max_connections", "100001", "above the maximum, 100000"),
     ("max_connections", "many", "is not a number"), ("wait_timeout", "1min", "is not a number"),
     ("innodb_buffer_pool_size", "2TB", "above the maximum"), ("max_allowed_packet", "16.1kB", "not a whole"),
     ("transaction_isolation", "snapshot", "is not one of"), ("slow_query_log", "maybe", "is not on or off"),
     ("collation_server", "utf8mb4_klingon_ci", "not a collation"), ("collation_server", "x'; DROP", "collation"),
     ("time_zone", "Europe/Paris", "named zones"), ("time_zone", "+14:00", "offset"),
     ("sql_mode", "ANSI,MAKE_IT_FAST", "MAKE_IT_FAST is not a MariaDB 10.11 sql_mode"),
     ("sql_mode", "ANSI\n[client]", "control characters")],
)  # fmt: skip
def test_refusals_name_the_parameter(name: str, value: str, words: str) -> None:
    found = params.problems({name: value})
    assert len(found) == 1 and found[0].startswith(f"parameters.{name}:") and words in found[0], found


def test_pairs_are_judged_together() -> None:
    found = params.problems({"character_set_server": "latin1", "collation_server": "utf8mb4_bin"})
    assert found == ["parameters.collation_server: utf8mb4_bin is not a collation of latin1"]
    assert params.problems({"collation_server": "utf8mb3_general_ci", "character_set_server": "utf8"}) == []
    assert "a tenth" in params.problems({"innodb_buffer_pool_size": "1GB"}, memory_bytes=GiB)[0]


def test_values_are_normalised_to_what_mariadbd_reads() -> None:
    given = {"innodb_buffer_pool_size": "1GB", "slow_query_log": "true", "transaction_isolation": "read-committed",
             "sql_mode": " ansi , traditional", "long_query_time": "0.5", "max_connections": "1e3",
             "Wait_Timeout": "60"}  # fmt: skip
    assert params.normalised(given) == {
        "innodb_buffer_pool_size": str(GiB), "slow_query_log": "ON", "transaction_isolation": "READ-COMMITTED",
        "sql_mode": "ANSI,TRADITIONAL", "long_query_time": "0.5", "max_connections": "1000", "wait_timeout": "60",
    }  # fmt: skip


def test_normalised_values_render() -> None:
    user = {"sql_mode": "", "collation_server": "UTF8MB4_BIN", "time_zone": "system", "max_heap_table_size": "64MB"}
    got = values(render(member(user_parameters=params.normalised(user))))
    assert got["sql_mode"] == "" and got["collation_server"] == "utf8mb4_bin"
    assert got["default_time_zone"] == "SYSTEM" and got["max_heap_table_size"] == str(64 * MiB)


# --- accounts -------------------------------------------------------------------------------

PASSWORDS = {"master": "Master'pw\"; DROP USER root --", "repl": "repl-secret-1", "agent": "agent%s-secret",
             "backup": "backup\\secret", "monitor": "monitor secret"}  # fmt: skip


def bootstrap() -> list[tuple[str, tuple]]:
    return accounts.bootstrap("admin", PASSWORDS["master"], "app", PASSWORDS["repl"], PASSWORDS["agent"],
                              backup_password=PASSWORDS["backup"], monitor_password=PASSWORDS["monitor"])  # fmt: skip


def grants_of(user: str, statements: list[tuple[str, tuple]]) -> list[str]:
    return [sql for sql, args in statements if sql.startswith("GRANT") and args and args[0] == user]


def test_passwords_are_parameters_in_hashed_form_never_sql_text() -> None:
    statements = bootstrap()
    for sql, args in statements:
        assert not any(p in sql for p in PASSWORDS.values()), sql
        assert not any(p in args for p in PASSWORDS.values()), args
        # The driver fills exactly these placeholders; a literal percent is doubled.
        assert sql.count("%s") == len(args) and "%" not in sql.replace("%s", "").replace("%%", ""), sql
        assert args or "%" not in sql, sql  # run with None for no params, it is not formatted
        assert "'" not in sql and '"' not in sql, sql
    hashes = {args[2] for sql, args in statements if "IDENTIFIED BY PASSWORD" in sql}
    assert hashes == {accounts.password_hash(p) for p in PASSWORDS.values()}
    assert accounts.password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"  # PASSWORD('password')


def test_the_master_has_none_of_the_privileges_that_break_ha() -> None:
    grants = grants_of("admin", bootstrap())
    text = " ".join(grants)
    for privilege in (
        "SUPER",
        "FILE",
        "SHUTDOWN",
        "BINLOG ADMIN",
        "READ_ONLY ADMIN",
        "RELOAD",
        "CONNECTION ADMIN",
        "REPLICATION SLAVE ADMIN",
        "REPLICATION MASTER ADMIN",
        "SET USER",
        "BINLOG REPLAY",
    ):
        assert not re.search(rf"(GRANT |, ){privilege}(,| ON)", text), privilege
    on_everything = [sql for sql in grants if " ON *.* " in sql]
    assert on_everything == ["GRANT PROCESS, SHOW DATABASES, CREATE USER, REPLICATION SLAVE, BINLOG MONITOR, "
                             "SLAVE MONITOR ON *.* TO %s@%s WITH GRANT OPTION"]  # fmt: skip
    assert not set(accounts.MASTER_GLOBAL + accounts.MASTER_DATABASE) & set(accounts.WITHHELD)


def test_the_masters_database_patterns_leave_out_the_system_schemas() -> None:
    patterns = accounts.master_database_patterns()
    for name in ("mysql", "sys", "MySQL", "SYS", "mYsQl"):
        assert not any(accounts.like(p, name) for p in patterns), name
    covered = ("app", "mydb", "music", "money", "my_ql", "s_s", "sbs", "mysqlx", "x", "ab", "test1", "orders_2024",
               "performance_schema", "my-db", "a$b")  # fmt: skip
    for name in covered:
        assert accounts.covered(name), name
    # What a pattern covers, a grant of a narrower pattern covers too: none of these is `%`.
    assert all(p != "%" and not p.startswith("%") for p in patterns) and len(patterns) == len(set(patterns))
    grants = [sql for sql in grants_of("admin", bootstrap()) if " ON `" in sql]
    assert len(grants) == len(patterns) + 1 and grants[-1].startswith("GRANT SELECT ON `mysql`.`slow_log` TO")
    assert all("mysql" not in sql and "WITH GRANT OPTION" in sql for sql in grants[:-1])


def test_like_reads_escapes_and_wildcards() -> None:
    assert accounts.like("m\\_%", "m_x") and not accounts.like("m\\_%", "max")
    assert accounts.like("_ys", "bys") and not accounts.like("_ys", "ys") and accounts.like("______%", "abcdef")


def test_service_accounts_have_what_they_need_and_no_more() -> None:
    statements = bootstrap()
    assert grants_of(accounts.REPLICATION_USER, statements) == ["GRANT REPLICATION SLAVE ON *.* TO %s@%s"]
    agent = grants_of(accounts.AGENT_USER, statements)
    assert len(agent) == 2 and all("READ_ONLY ADMIN" in sql and "REPLICATION SLAVE ADMIN" in sql for sql in agent)
    assert not any(p in " ".join(agent) for p in ("SUPER", "SHUTDOWN", "FILE"))
    hosts = {args[1] for sql, args in statements if sql.startswith("CREATE") and args[:1] == (accounts.AGENT_USER,)}
    assert hosts == {"localhost", "%"}
    backup = " ".join(grants_of(accounts.BACKUP_USER, statements))
    assert all(p in backup for p in ("RELOAD", "PROCESS", "LOCK TABLES", "BINLOG MONITOR"))
    monitor = [sql for sql, args in statements if args[:1] == (accounts.MONITOR_USER,)]
    assert "WITH MAX_USER_CONNECTIONS 3" in monitor[0] and "SUPER" not in " ".join(monitor)


def test_every_member_hardens_itself_and_the_bootstrap_replicates_no_system_rows() -> None:
    statements = accounts.hardening()
    assert ("DELETE FROM mysql.global_priv WHERE User = %s", ("",)) in statements
    assert ("DROP DATABASE IF EXISTS test", ()) in statements
    assert ("ALTER USER IF EXISTS %s@%s IDENTIFIED VIA unix_socket", ("root", "localhost")) in statements
    assert ("DELETE FROM mysql.global_priv WHERE User = %s AND Host <> %s", ("root", "localhost")) in statements
    # The install's system rows differ between members: the replicated bootstrap writes none.
    assert not any(sql.startswith(("DELETE", "INSERT", "UPDATE")) for sql, _ in bootstrap())
    assert bootstrap()[-1] == ("CREATE DATABASE IF NOT EXISTS `app`", ())
    assert not any(sql.startswith("CREATE DATABASE") for sql, _ in accounts.bootstrap("admin", "p", None, "r", "a"))


@pytest.mark.parametrize("name", ["app`; DROP DATABASE x; --", "my db", "1app", "a" * 33, "", "app\n"])
def test_identifiers_outside_the_strict_pattern_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        accounts.quote_identifier(name)
    with pytest.raises(ValueError):
        accounts.bootstrap(name, "p", None, "r", "a")
    with pytest.raises(ValueError):
        accounts.bootstrap("admin", "p", name, "r", "a")


@pytest.mark.parametrize("user", ["root", "ROOT", "mysql", "mariadb.sys", "rdsadmin", "kuberds_repl", "kuberds_new",
                                  "public"])  # fmt: skip
def test_reserved_users_cannot_be_the_master(user: str) -> None:
    assert accounts.is_reserved_user(user)
    with pytest.raises(ValueError):
        accounts.bootstrap(user, "p", None, "r", "a")


@pytest.mark.parametrize("name", ["mysql", "sys", "MySQL", "information_schema", "performance_schema"])
def test_system_schemas_cannot_be_the_masters_database(name: str) -> None:
    with pytest.raises(ValueError):
        accounts.database(name)


def test_reserved_users_are_listed() -> None:
    assert {"root", "mysql", "mariadb.sys", "rdsadmin", "kuberds_repl", "kuberds_agent"} <= set(
        accounts.reserved_users()
    )
    assert accounts.quote_identifier("app_1") == "`app_1`" and not accounts.is_reserved_user("admin")
