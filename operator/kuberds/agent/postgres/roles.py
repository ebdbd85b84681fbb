"""Role management for the master user without CREATEROLE.

On PostgreSQL 15 a CREATEROLE role may grant itself any role that is not a superuser, the
predefined pg_execute_server_program, pg_read_server_files and pg_write_server_files among
them, and from there `COPY … FROM PROGRAM` runs shell commands as the server's OS user. So
the master user (like RDS's rds_superuser: powerful inside its databases) has no CREATEROLE;
it manages roles through these SECURITY DEFINER functions, owned by the superuser, which
refuse every role PostgreSQL or kuberds keeps: predefined pg_* roles and members of them,
superusers, replication and BYPASSRLS roles, role creators, and kuberds' own users.

    SELECT kuberds.create_role('reporting', 'a-password');            -- LOGIN, no CREATEDB
    SELECT kuberds.create_role('owners', NULL, can_login => false);
    SELECT kuberds.grant_role('owners', 'reporting');
    SELECT kuberds.set_role_password('reporting', 'another');
    SELECT kuberds.revoke_role('owners', 'reporting');
    SELECT kuberds.drop_role('reporting');
"""

from __future__ import annotations

from psycopg import sql

# pg_authid's first ordinary OID: every role below it is one PostgreSQL itself defines.
FIRST_NORMAL_OID = 16384

FUNCTIONS = """
CREATE SCHEMA IF NOT EXISTS kuberds;
REVOKE ALL ON SCHEMA kuberds FROM PUBLIC;
GRANT USAGE ON SCHEMA kuberds TO {master};

CREATE OR REPLACE FUNCTION kuberds.refuse_kept(role_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    existing pg_roles%ROWTYPE;  -- not `found`: PL/pgSQL names are case-blind, FOUND is taken
BEGIN
    IF role_name IS NULL OR role_name = ANY ({kept}) OR role_name ILIKE 'pg\\_%' THEN
        RAISE EXCEPTION 'role % is kept by PostgreSQL or kuberds', role_name USING ERRCODE = '42501';
    END IF;
    SELECT * INTO existing FROM pg_roles WHERE rolname = role_name;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF existing.oid < {first_normal_oid} OR existing.rolsuper OR existing.rolreplication OR existing.rolbypassrls
            OR existing.rolcreaterole
            OR EXISTS (SELECT 1 FROM pg_roles kept WHERE kept.oid < {first_normal_oid}
                       AND kept.oid <> existing.oid AND pg_has_role(existing.oid, kept.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'role % holds rights kuberds keeps (superuser, replication, BYPASSRLS, CREATEROLE '
                        'or a predefined pg_* role)', role_name USING ERRCODE = '42501';
    END IF;
END
$body$;

CREATE OR REPLACE FUNCTION kuberds.create_role(role_name text, password text DEFAULT NULL,
        can_login boolean DEFAULT true, can_create_db boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    PERFORM kuberds.refuse_kept(role_name);
    EXECUTE format('CREATE ROLE %I WITH %s %s NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS',
                   role_name, CASE WHEN can_login THEN 'LOGIN' ELSE 'NOLOGIN' END,
                   CASE WHEN can_create_db THEN 'CREATEDB' ELSE 'NOCREATEDB' END);
    IF password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I WITH PASSWORD %L', role_name, password);
    END IF;
END
$body$;

CREATE OR REPLACE FUNCTION kuberds.set_role_password(role_name text, password text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    PERFORM kuberds.refuse_kept(role_name);
    EXECUTE format('ALTER ROLE %I WITH PASSWORD %L', role_name, password);
END
$body$;

CREATE OR REPLACE FUNCTION kuberds.drop_role(role_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    PERFORM kuberds.refuse_kept(role_name);
    EXECUTE format('DROP ROLE %I', role_name);
END
$body$;

CREATE OR REPLACE FUNCTION kuberds.grant_role(role_name text, member_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    PERFORM kuberds.refuse_kept(role_name);
    IF member_name <> {master_name} THEN
        PERFORM kuberds.refuse_kept(member_name);
    END IF;
    EXECUTE format('GRANT %I TO %I', role_name, member_name);
END
$body$;

CREATE OR REPLACE FUNCTION kuberds.revoke_role(role_name text, member_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    PERFORM kuberds.refuse_kept(role_name);
    EXECUTE format('REVOKE %I FROM %I', role_name, member_name);
END
$body$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA kuberds FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kuberds.create_role(text, text, boolean, boolean), kuberds.set_role_password(text, text),
    kuberds.drop_role(text), kuberds.grant_role(text, text), kuberds.revoke_role(text, text) TO {master};
"""


def functions(master: str, kept: list[str]) -> sql.Composed:
    """The statements that install the functions in one database, for this master user;
    `kept` are the roles kuberds itself uses (superuser, replication, rewind, the master)."""
    return sql.SQL(FUNCTIONS).format(
        master=sql.Identifier(master),
        master_name=sql.Literal(master),
        kept=sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(k) for k in kept)),
        first_normal_oid=sql.Literal(FIRST_NORMAL_OID),
    )
