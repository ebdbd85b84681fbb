"""A server's Services: writer, reader (and a DBCluster's custom endpoints), whose
EndpointSlices kuberds writes from the leader lease (builders.routing), and the headless one
for the pods' own names. Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.routing import routes
from kuberds.builders.server import Server


def _service(server: Server, name: str, selector: dict[str, str] | None, headless: bool = False) -> dict:
    engine = server.spec.engine
    # Without a selector the port is the EndpointSlice's, matched by name.
    target = engine if selector else server.port
    ports = [{"name": engine, "port": server.port, "targetPort": target, "protocol": "TCP"}]
    spec: dict = {"type": "ClusterIP", "ports": ports, **({"selector": selector} if selector else {})}
    if headless:
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
        agent_port = server.engine.layout.agent_port
        ports.append({"name": "agent", "port": agent_port, "targetPort": "agent", "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service", "metadata": server.meta(name), "spec": spec}


def services(server: Server) -> list[dict]:
    """The headless Service selects every member; the routed ones select none."""
    headless = _service(server, names.headless_service(server.name), server.selector(), headless=True)
    return [headless, *(_service(server, route.service, None) for route in routes(server))]
