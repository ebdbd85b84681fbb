"""A server's Services: writer, reader, and the headless one for the pods' own names. Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.server import Server
from kuberds.contract import PRIMARY, REPLICA, ROLE_LABEL


def _service(server: Server, name: str, selector: dict[str, str], headless: bool = False) -> dict:
    engine = server.spec.engine
    ports = [{"name": engine, "port": server.port, "targetPort": engine, "protocol": "TCP"}]
    spec: dict = {"type": "ClusterIP", "selector": selector, "ports": ports}
    if headless:
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
        agent_port = server.engine.layout.agent_port
        ports.append({"name": "agent", "port": agent_port, "targetPort": "agent", "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": server.meta(name), "spec": spec}


def services(server: Server) -> list[dict]:
    """The writer and reader select pods by the role label their HA manager writes."""
    selector, role = server.selector(), server.engine.role_label_values
    return [
        _service(server, names.headless_service(server.name), selector, headless=True),
        _service(server, names.writer_service(server.name), {**selector, ROLE_LABEL: role[PRIMARY]}),
        _service(server, names.reader_service(server.name), {**selector, ROLE_LABEL: role[REPLICA]}),
    ]
