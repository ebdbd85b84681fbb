"""The operator's client for the agents' HA API, against a real HTTPS server on loopback with
a certificate kuberds' own builders issued: it trusts the server's CA and the pod's name only."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kuberds.agent.health import serve_health
from kuberds.builders import certificates
from kuberds.engines import AgentRequest
from kuberds.operations import agents

NOW = datetime.now(UTC)
POD_NAME = "orders-0.orders-pods.shop.svc"
REQUEST = AgentRequest("POST", "/switchover", {"leader": "orders-0", "candidate": "orders-1"})


@pytest.fixture(scope="module")
def ca() -> certificates.KeyPair:
    return certificates.new_ca("orders CA", NOW)


@pytest.fixture(scope="module")
def served(ca, tmp_path_factory) -> Iterator[int]:
    """The agents' own API server (kuberds.agent.health) over TLS, with a certificate for the
    pod's name under the headless Service."""
    leaf = certificates.server_certificate(ca, ["*.orders-pods.shop.svc"], NOW)
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "tls.crt").write_text(leaf.certificate)
    (folder / "tls.key").write_text(leaf.key)
    actions = {"/switchover": lambda body: (200, f"switched over to {body['candidate']}")}
    server = serve_health("127.0.0.1", 0, lambda: True, lambda: True, actions, "api-pw",
                          (str(folder / "tls.crt"), str(folder / "tls.key")))  # fmt: skip
    yield server.server_address[1]
    server.shutdown()


def test_the_right_ca_and_pod_name_are_trusted(ca, served: int) -> None:
    tls = agents.AgentTls(ca.certificate, POD_NAME)
    answer = agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5, tls=tls)
    assert answer == "switched over to orders-1"


def test_a_certificate_from_another_ca_is_refused(served: int) -> None:
    other = certificates.new_ca("another CA", NOW)
    with pytest.raises(agents.AgentError, match="CERTIFICATE_VERIFY_FAILED"):
        agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5, tls=agents.AgentTls(other.certificate, POD_NAME))


def test_a_certificate_for_another_name_is_refused(ca, served: int) -> None:
    elsewhere = agents.AgentTls(ca.certificate, "billing-0.billing-pods.shop.svc")
    with pytest.raises(agents.AgentError, match="CERTIFICATE_VERIFY_FAILED"):
        agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5, tls=elsewhere)


def test_plain_http_to_a_tls_member_fails_and_a_refusal_is_reported(ca, served: int) -> None:
    with pytest.raises(agents.AgentError, match="unreachable"):
        agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5)
    with pytest.raises(agents.AgentError, match="answered 401: the agent API password is required"):
        agents.send("127.0.0.1", served, REQUEST, None, timeout=5, tls=agents.AgentTls(ca.certificate, POD_NAME))


def test_a_client_stalled_in_the_handshake_holds_no_one_else_up(ca, served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)):  # connects, never says hello
        started = time.monotonic()
        answer = agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5,
                             tls=agents.AgentTls(ca.certificate, POD_NAME))  # fmt: skip
        assert answer == "switched over to orders-1" and time.monotonic() - started < 2


def test_a_body_length_the_api_cannot_take_is_refused_before_it_is_read() -> None:
    server = serve_health("127.0.0.1", 0, lambda: True, lambda: True, {"/switchover": lambda body: (200, "done")},
                          "api-pw")  # fmt: skip
    try:
        for length in ("-1", "not a number", str(10**9)):
            with socket.create_connection(server.server_address, timeout=5) as client:
                client.sendall(f"POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
                assert client.recv(200).startswith(b"HTTP/1.0 413"), length
    finally:
        server.shutdown()
