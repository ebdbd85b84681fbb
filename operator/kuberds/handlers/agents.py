"""Requests to the in-pod agents' HTTP port (what an engine's AgentRequest describes).

The only traffic from the operator to database pods: the operator runs in the cluster and
reaches pod IPs directly. Kubernetes API calls go through kuberds.kube, not here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from kuberds.agent.config import basic_auth
from kuberds.engines import AgentRequest

# A switchover waits for the candidate to catch up and be promoted: seconds, not minutes.
TIMEOUT_SECONDS = 60


class AgentError(RuntimeError):
    """The agent was unreachable or refused the request; the message says which."""


def send(ip: str, port: int, request: AgentRequest, password: str | None, timeout: float = TIMEOUT_SECONDS) -> str:
    """Sends the request (with the server's agent API password) and returns the agent's
    answer text; raises AgentError otherwise."""
    host = f"[{ip}]" if ":" in ip else ip
    http_request = urllib.request.Request(
        f"http://{host}:{port}{request.path}",
        data=json.dumps(request.body).encode(),
        method=request.method,
        headers={"Content-Type": "application/json", **basic_auth(password)},
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:
            return response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as refused:
        detail = refused.read().decode(errors="replace").strip()
        raise AgentError(f"{request.path} answered {refused.code}: {detail}") from refused
    except OSError as unreachable:
        raise AgentError(f"{request.path} on {host}:{port} unreachable: {unreachable}") from unreachable
