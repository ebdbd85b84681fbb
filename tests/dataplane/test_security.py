"""The attacker's tests: logged in as the master user, every way out of the database is tried
on a real PostgreSQL 15 under Patroni, and each is refused. The master user is powerful inside
its databases (it creates databases, reads and writes all data, manages ordinary roles) and
has no way to the server's OS user, its files, its environment or kuberds' own roles."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime

import psycopg
import pytest
from tests.support.dataplane import LocalServer
from tests.support.kube import wait_for

from kuberds.builders import certificates
from kuberds.engines.postgres import POSTGRES
from kuberds.operations import agents

# Each must fail with insufficient_privilege (42501).
ESCAPES = [
    # Predefined roles that reach the OS: granting them needs CREATEROLE (or their admin option).
    "GRANT pg_execute_server_program TO app",
    "GRANT pg_read_server_files TO app",
    "GRANT pg_write_server_files TO app",
    "CREATE ROLE sneaky IN ROLE pg_execute_server_program",
    "CREATE ROLE sneaky LOGIN PASSWORD 'x'",
    "CREATE ROLE sneaky SUPERUSER",
    # Rights on itself or on kuberds' roles.
    "ALTER ROLE app SUPERUSER",
    "ALTER ROLE app CREATEROLE",
    "ALTER ROLE app REPLICATION",
    "ALTER ROLE app BYPASSRLS",
    "ALTER ROLE postgres PASSWORD 'x'",
    "ALTER ROLE replicator PASSWORD 'x'",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    # The OS, its files and its environment, directly.
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "CREATE TEMP TABLE loot (line text); COPY loot FROM PROGRAM 'env'",
    "CREATE TEMP TABLE loot2 (line text); COPY loot2 FROM '/proc/self/environ'",
    "SELECT pg_read_file('/proc/self/environ')",
    "SELECT pg_read_binary_file('postgresql.conf')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "ALTER SYSTEM SET archive_command = 'id > /tmp/owned'",
    "LOAD 'auto_explain'",
    "CREATE FUNCTION run(cstring) RETURNS int LANGUAGE c AS 'libc.so.6', 'system'",
    "ALTER ROLE rewind PASSWORD 'x'",
    # kuberds' role functions refuse what reaches further.
    "SELECT kuberds.grant_role('pg_execute_server_program', 'app')",
    "SELECT kuberds.grant_role('pg_read_server_files', 'app')",
    "SELECT kuberds.grant_role('pg_monitor', 'app')",
    "SELECT kuberds.create_role('pg_sneaky', 'x')",
    "SELECT kuberds.create_role('postgres', 'x')",
    "SELECT kuberds.set_role_password('postgres', 'x')",
    "SELECT kuberds.set_role_password('replicator', 'x')",
    "SELECT kuberds.drop_role('rewind')",
    "SELECT kuberds.grant_role('app', 'public')",
    "SELECT kuberds.refuse_kept('anything')",
    "CREATE FUNCTION kuberds.create_role(text) RETURNS void LANGUAGE sql AS 'SELECT 1'",
]


def ready(servers, name: str, **kwargs) -> LocalServer:
    server = servers(name, None, multi_az=False, **kwargs)
    primary = server.primary()
    wait_for(lambda: server.agent_status(primary).get("accountsReady") is True, timeout=60,
             what=f"the accounts set\n{server.logs()}")  # fmt: skip
    return server


def test_the_master_user_has_no_way_out_of_its_databases(servers) -> None:
    server = ready(servers, "escape")
    refused = []
    for statement in ESCAPES:
        with server.connect(autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as error:
                conn.execute(statement)
            refused.append((statement, error.value.sqlstate))
    assert [s for s, code in refused if code != "42501"] == [], refused
    with server.superuser(server.primary()) as root:
        holders = root.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
            "WHERE m.roleid IN ('pg_execute_server_program'::regrole, "
            "'pg_read_server_files'::regrole, 'pg_write_server_files'::regrole)"
        ).fetchall()
        assert holders == []
        app = root.execute("SELECT rolsuper, rolcreaterole, rolreplication, rolbypassrls, rolcreatedb FROM pg_roles "
                           "WHERE rolname = 'app'").fetchone()  # fmt: skip
        assert app == (False, False, False, False, True)


def test_the_master_user_manages_ordinary_roles_through_kuberds_functions(servers) -> None:
    server = ready(servers, "roles")
    primary = server.primary()
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT kuberds.create_role('reporting', 'report-pw-1')")
        conn.execute("SELECT kuberds.create_role('owners', NULL, can_login => false)")
        conn.execute("SELECT kuberds.grant_role('owners', 'reporting')")
        conn.execute("SELECT kuberds.grant_role('owners', 'app')")
        conn.execute("CREATE TABLE ledger (id int)")
        conn.execute("GRANT SELECT ON ledger TO owners")
        conn.execute("SELECT kuberds.set_role_password('reporting', 'report-pw-2')")
        # Names are identifiers, never SQL: this makes an oddly named role, nothing more.
        conn.execute("""SELECT kuberds.create_role('x"; ALTER ROLE app SUPERUSER; --', 'p')""")
    with psycopg.connect(host="127.0.0.1", port=primary.pg_port, user="reporting", password="report-pw-2",
                         dbname="app", connect_timeout=3) as reporting:  # fmt: skip
        assert reporting.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reporting.execute("SELECT kuberds.create_role('mine', 'x')")
    with server.superuser(primary) as root:
        made = root.execute(
            "SELECT rolname, rolsuper, rolcreaterole FROM pg_roles WHERE rolname IN "
            "('reporting', 'owners', 'app') OR rolname LIKE 'x\"%' ORDER BY 1"
        ).fetchall()
        assert [(name, superuser, creator) for name, superuser, creator in made] == [
            ("app", False, False), ("owners", False, False), ("reporting", False, False),
            ('x"; ALTER ROLE app SUPERUSER; --', False, False)]  # fmt: skip
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT kuberds.revoke_role('owners', 'reporting')")
        conn.execute("REVOKE SELECT ON ledger FROM owners")
        conn.execute("SELECT kuberds.drop_role('reporting')")


def test_the_master_password_never_reaches_the_log(servers) -> None:
    """With every statement logged, the agent's ALTER ROLE still carries no password: its
    session does not log, and it sends a SCRAM verifier, not the password."""
    server = ready(servers, "quiet", spec={"parameters": {"log_statement": "all"}})
    primary = server.primary()
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT 'a statement that is logged'")
    with server.superuser(primary) as root:
        stored = root.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$4096:")
    log = primary.log.read_text(errors="replace")
    assert "a statement that is logged" in log, "log_statement=all reaches the member's log"
    assert server.master_password not in log, [line for line in log.splitlines() if server.master_password in line]


def test_the_ha_api_speaks_only_verified_tls_and_acts_only_with_the_password(servers) -> None:
    """Patroni's REST API (switchover, restart, configuration) on a real member: plain HTTP
    gets nothing, a client trusting another CA refuses the member, and the unsafe calls need
    the server's API password."""
    server = ready(servers, "api")
    primary = server.primary()
    assert server.agent_status(primary).get("apiTLS") is True
    base = f"127.0.0.1:{primary.api_port}"
    with pytest.raises(OSError):  # the member answers TLS only: plain HTTP gets no answer
        urllib.request.urlopen(f"http://{base}/patroni", timeout=3).read()
    stranger = certificates.new_ca("not the server's CA", datetime.now(UTC))
    untrusting = ssl.create_default_context(cadata=stranger.certificate)
    untrusting.check_hostname = False
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://{base}/patroni", timeout=3, context=untrusting).read()
    assert primary.patroni("/patroni")["role"] in ("master", "primary"), "with the server's CA it answers"
    request = POSTGRES.switchover(primary.name, "nobody")
    with pytest.raises(agents.AgentError, match="401"):
        tls = agents.AgentTls(primary.api_ca.read_text(), "localhost")
        agents.send("127.0.0.1", primary.api_port, request, "not-the-password", timeout=5, tls=tls)
    with pytest.raises(agents.AgentError, match="401"):
        agents.send("127.0.0.1", primary.api_port, request, None, timeout=5, tls=tls)
