"""The agent's health endpoints for the kubelet's probes (the agents that supervise their
engine themselves: Redis, MariaDB): /ready asks the agent's own view (the primary holding the
lease, a replica streaming), any other path only whether the engine's process runs, so a
primary cut off from the API server is never killed for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_health(address: str, port: int, alive: Callable[[], bool], ready: Callable[[], bool]) -> ThreadingHTTPServer:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = ready() if self.path == "/ready" else alive()
            self.send_response(200 if ok else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Health)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
