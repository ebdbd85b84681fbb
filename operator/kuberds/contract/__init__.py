"""The contract between the operator and the agent in every database pod.

The two sides meet here and nowhere else: the operator (api, builders, handlers,
operations, engines) and the agent (kuberds.agent) never import each other's modules; both
import this package (and the neutral helpers codec, quantity and restclient).

    settings     agent.json: what the operator tells a server's agents (AgentConfig and plans)
    report       what an agent tells the operator: the typed report on its own pod
    environment  the variables a pod's container gets, secrets among them, and their parsing
    layouts      what each engine's image looks like: paths, ports, the OS user

The names below are read and written on both sides.
"""

from __future__ import annotations

import base64

# The agent's report on its own pod (JSON of kuberds.contract.report.AgentReport).
AGENT_STATUS_ANNOTATION = "kuberds.io/agent-status"
# Set on each database pod by its HA manager; the writer and reader Services select on it.
# The values are the engine's (kuberds.engines: role_label_values).
ROLE_LABEL = "kuberds.io/role"
# Member roles as kuberds names them (status, decisions, reports).
PRIMARY, REPLICA = "primary", "replica"

# Where the pod finds agent.json (the NAME-settings ConfigMap, mounted read-only).
CONFIG_DIR = "/etc/kuberds"
SETTINGS_FILE = "agent.json"
# Where the pod finds the served certificate and key (never a CA key).
TLS_DIR = "/etc/kuberds-tls"
TLS_FILES = ("tls.crt", "tls.key")
# Beside them when kuberds issued the certificate: the server's CA (public), which members
# check each other's certificates against.
TLS_CA_FILE = "ca.crt"

# The user the HA API asks for on requests that change something (switchover, restart).
AGENT_API_USER = "kuberds"


def basic_auth(password: str | None) -> dict[str, str]:
    """The header for the HA API's unsafe endpoints (none when no password is set)."""
    if not password:
        return {}
    token = base64.b64encode(f"{AGENT_API_USER}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
