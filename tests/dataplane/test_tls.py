"""Client TLS on real PostgreSQL: served from the mounted certificate, required when asked,
and a new certificate taken without a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from tests.support.dataplane import LocalServer
from tests.support.kube import wait_for

from kuberds.builders import certificates


def verified(server: LocalServer, ca_file: str) -> psycopg.Connection:
    """Through the name the certificate carries, checking it chains to `ca_file`."""
    member = server.primary()
    return psycopg.connect(host="localhost", hostaddr="127.0.0.1", port=member.pg_port, user="app",
                           password=server.master_password, dbname="app", connect_timeout=3,
                           sslmode="verify-full", sslrootcert=ca_file)  # fmt: skip


def test_tls_is_served_required_and_renewed_in_place(servers) -> None:
    server = servers("tls", None, multi_az=False, spec={"tls": {"require": True}})
    server.primary()
    wait_for(lambda: server.agent_status(server.primary()).get("accountsReady") is True, timeout=60,
             what="the master user set")  # fmt: skip
    with verified(server, str(server.tls_dir / "ca.crt")) as conn:
        ssl, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl is True and version in ("TLSv1.2", "TLSv1.3")
    # tls.require: TCP without TLS is refused, whoever asks.
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        server.connect(sslmode="disable")

    # A reissued certificate (here from a new CA) lands in the mounted directory: the agent
    # copies it and PostgreSQL rereads it without a restart.
    with server.superuser(server.primary()) as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    now = datetime.now(UTC)
    ca = certificates.new_ca("renewed CA", now)
    renewed = certificates.server_certificate(ca, ["localhost"], now)
    new_ca_file = server.tls_dir / "renewed-ca.crt"
    new_ca_file.write_text(ca.certificate)
    (server.tls_dir / "tls.key").write_text(renewed.key)
    (server.tls_dir / "tls.crt").write_text(renewed.certificate)

    def new_certificate_served() -> bool:
        try:
            with verified(server, str(new_ca_file)):
                return True
        except psycopg.OperationalError:
            return False

    wait_for(new_certificate_served, timeout=30, what=f"the renewed certificate served\n{server.logs()}")
    # Patroni's API serves the same certificate, reloaded too: verified by the new CA from now on.
    for member in server.members:
        member.api_ca = new_ca_file
    with server.superuser(server.primary()) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started, "no restart"
