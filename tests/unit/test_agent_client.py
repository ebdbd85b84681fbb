"""The operator's client for the agents' HA API, against a real HTTPS server on loopback with
a certificate kuberds' own builders issued: it trusts the server's CA and the pod's name only."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kuberds.builders import certificates
from kuberds.engines import AgentRequest
from kuberds.operations import agents

NOW = datetime.now(UTC)
POD_NAME = "orders-0.orders-pods.shop.svc"
REQUEST = AgentRequest("POST", "/switchover", {"leader": "orders-0", "candidate": "orders-1"})


class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        authorized = self.headers.get("Authorization", "").startswith("Basic ")
        self.send_response(200 if authorized else 401)
        self.end_headers()
        self.wfile.write(b"switched over" if authorized else b"no credentials")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def ca() -> certificates.KeyPair:
    return certificates.new_ca("orders CA", NOW)


@pytest.fixture(scope="module")
def served(ca, tmp_path_factory) -> Iterator[int]:
    """A TLS server with a certificate for the pod's name under the headless Service."""
    leaf = certificates.server_certificate(ca, ["*.orders-pods.shop.svc"], NOW)
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "tls.crt").write_text(leaf.certificate)
    (folder / "tls.key").write_text(leaf.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_right_ca_and_pod_name_are_trusted(ca, served: int) -> None:
    tls = agents.AgentTls(ca.certificate, POD_NAME)
    answer = agents.send("127.0.0.1", served, REQUEST, "api-pw", timeout=5, tls=tls)
    assert answer == "switched over"


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
    with pytest.raises(agents.AgentError, match="answered 401: no credentials"):
        agents.send("127.0.0.1", served, REQUEST, None, timeout=5, tls=agents.AgentTls(ca.certificate, POD_NAME))
