"""The agent's HTTP endpoints (the agents that supervise their engine themselves: Redis,
MariaDB). GET /ready asks the agent's own view (the primary holding the lease, a replica
streaming); any other GET only whether the engine's process runs, so a primary cut off from
the API server is never killed for it. POST paths are the actions the operator may ask for
(a switchover): each needs the agent API password (contract.basic_auth) and answers 2xx only
once done. With a certificate the API is served over TLS (the operator verifies it with the
server's CA; the kubelet's probes do not verify); the handshake runs on the request's own
thread, so a client that stalls in it holds no one else up."""

from __future__ import annotations

import hmac
import json
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kuberds.contract import basic_auth

# An action: the request's JSON body in, (HTTP status, answer text) out.
Action = Callable[[dict], tuple[int, str]]
MAX_BODY = 64 * 1024
HANDSHAKE_SECONDS = 5.0
REQUEST_SECONDS = 10.0


class _TlsServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a probe or client that does not speak TLS: nothing to answer
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def serve_health(
    address: str,
    port: int,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
    actions: Mapping[str, Action] | None = None,
    password: str | None = None,
    certificate: tuple[str, str] | None = None,
) -> ThreadingHTTPServer:
    """`certificate`: (cert file, key file) to serve over TLS; None: plain HTTP."""
    expected = basic_auth(password).get("Authorization", "")
    posts = dict(actions or {})

    class Api(BaseHTTPRequestHandler):
        timeout = REQUEST_SECONDS  # on every read and write: a client that stalls is let go

        def do_GET(self) -> None:
            ok = ready() if self.path == "/ready" else alive()
            self._answer(200 if ok else 503, "")

        def do_POST(self) -> None:
            action = posts.get(self.path)
            if action is None:
                return self._answer(404, f"no action {self.path}")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self._answer(413, f"a body of 0 to {MAX_BODY} bytes, with its Content-Length")
            data = self.rfile.read(length)  # read first: a reply before it may be lost to a reset
            if not expected or not hmac.compare_digest(self.headers.get("Authorization", ""), expected):
                return self._answer(401, "the agent API password is required")
            try:
                body = json.loads(data or b"{}")
            except ValueError:
                return self._answer(400, "the body is not JSON")
            status, text = action(body if isinstance(body, dict) else {})
            self._answer(status, text)

        def _answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    if certificate is None:
        server = ThreadingHTTPServer((address, port), Api)
    else:
        server = _TlsServer((address, port), Api, server_context(*certificate))
    threading.Thread(target=server.serve_forever, name="agent-api", daemon=True).start()
    return server
