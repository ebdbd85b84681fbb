"""The operator's client for the in-pod agents' HTTP port (what an engine's AgentRequest
describes): the only traffic from the operator to database pods. The operator runs in the
cluster and reaches pod IPs directly; Kubernetes API calls go through kuberds.kube.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass

from kuberds.contract import basic_auth
from kuberds.engines import AgentRequest

# Patroni answers a switchover within about 15 s (or says it could not tell); the call
# holds one of the operator's worker threads meanwhile, so it is bounded.
TIMEOUT_SECONDS = 30


class AgentError(RuntimeError):
    """The agent was unreachable or refused the request; the message says which."""


@dataclass(frozen=True)
class AgentTls:
    """How to check a member's HA API: its certificate must chain to `ca` (PEM, the server's
    CA) and name `server_name` (the pod's DNS name), though it is reached by address."""

    ca: str
    server_name: str


class _Connection(http.client.HTTPSConnection):
    """HTTPS to an address, verifying the certificate for another name (the pod's)."""

    def __init__(self, ip: str, port: int, tls: AgentTls, timeout: float):
        context = ssl.create_default_context(cadata=tls.ca)
        super().__init__(ip, port, timeout=timeout, context=context)
        self.verify, self.server_name = context, tls.server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.verify.wrap_socket(sock, server_hostname=self.server_name)


def send(ip: str, port: int, request: AgentRequest, password: str | None, timeout: float = TIMEOUT_SECONDS,
         tls: AgentTls | None = None) -> str:  # fmt: skip
    """Sends the request (with the server's agent API password; over verified TLS when the
    member serves it) and returns the agent's answer text; raises AgentError otherwise. Pod
    addresses are reached directly, never through a proxy."""
    host = f"[{ip}]" if ":" in ip else ip
    connection = _Connection(ip, port, tls, timeout) if tls else http.client.HTTPConnection(ip, port, timeout=timeout)
    headers = {"Content-Type": "application/json", **basic_auth(password)}
    try:
        connection.request(request.method, request.path, body=json.dumps(request.body), headers=headers)
        response = connection.getresponse()
        answer = response.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as unreachable:  # also: a certificate that does not verify
        raise AgentError(f"{request.path} on {host}:{port} unreachable: {unreachable}") from unreachable
    finally:
        connection.close()
    if response.status >= 300:
        raise AgentError(f"{request.path} answered {response.status}: {answer}")
    return answer
