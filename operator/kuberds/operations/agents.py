"""The operator's client for the in-pod agents' HTTP port (what an engine's AgentRequest
describes): the only traffic from the operator to database pods. The operator runs in the
cluster and reaches pod IPs directly; Kubernetes API calls go through kuberds.kube.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from kuberds.contract import basic_auth
from kuberds.engines import AgentRequest

# Patroni answers a switchover within about 15 s (or says it could not tell); the call
# holds one of the operator's worker threads meanwhile, so it is bounded.
TIMEOUT_SECONDS = 30

# Pod IPs are never reached through a proxy (and Basic credentials never go to one).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
        with _OPENER.open(http_request, timeout=timeout) as response:
            return response.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as refused:
        detail = refused.read().decode(errors="replace").strip()
        raise AgentError(f"{request.path} answered {refused.code}: {detail}") from refused
    except OSError as unreachable:
        raise AgentError(f"{request.path} on {host}:{port} unreachable: {unreachable}") from unreachable
