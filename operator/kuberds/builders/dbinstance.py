"""A DBInstance's objects: one server of one or two pods (Multi-AZ). Pure."""

from __future__ import annotations

from kuberds.builders.disruption_budget import disruption_budget
from kuberds.builders.meta import Owner
from kuberds.builders.network_policy import network_policy
from kuberds.builders.proxy import proxy_objects
from kuberds.builders.rbac import agent_rbac
from kuberds.builders.server import Server, database_server
from kuberds.builders.services import services
from kuberds.builders.settings import settings_config_map
from kuberds.builders.statefulset import stateful_set
from kuberds.config import OperatorConfig
from kuberds.engines import Engine


def instance_server(owner: Owner, spec, engine: Engine, config: OperatorConfig, **passed: object) -> Server:
    """The server a DBInstance is: Multi-AZ adds one synchronous standby in another zone."""
    return database_server(owner, spec, engine, config, replicas=2 if spec.multi_az else 1,
                           synchronous=spec.multi_az, zones_required=spec.multi_az, **passed)  # fmt: skip


def server_objects(server: Server) -> list[dict]:
    """Every object of the server except the generated Secrets, in a safe apply order."""
    return [
        settings_config_map(server),
        *agent_rbac(server),
        *services(server),
        network_policy(server),
        disruption_budget(server),
        stateful_set(server),
        *proxy_objects(server),
    ]
