"""Which pods each endpoint of a server routes to, decided from the HA truth rather than from
pod labels, and the EndpointSlices that say so. Pure.

The writer endpoint follows the holder of the leader lease (the HA manager's leader object in
the API server). A writer whose node died keeps its role label, because nothing on that node
can change it; the lease moves anyway, and so does the endpoint, at the event that moves it.
Readers are the other members that are ready and no further behind than the kind allows;
the reader endpoint falls back to the writer when no reader is. A custom endpoint (Aurora's)
is a subset of those by member ordinal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kuberds.builders import names
from kuberds.builders.server import Server
from kuberds.builders.status import Member

# Selector-less Services' EndpointSlices are ours to write; these labels tie a slice to its
# Service for kube-proxy and tell the EndpointSlice controllers to leave it alone.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "operator.kuberds.io"
# The annotation on the HA manager's leader object naming the member that holds the lease.
LEADER_ANNOTATION = "leader"


@dataclass(frozen=True)
class Route:
    """One endpoint: a Service whose EndpointSlice kuberds keeps."""

    service: str
    role: Literal["writer", "reader", "custom"]
    endpoint: str | None = None  # a custom endpoint's name in the spec
    with_writer: bool = False  # a custom endpoint of type ANY
    static: tuple[int, ...] = ()  # only these ordinals (empty: all)
    excluded: tuple[int, ...] = ()


def leader_of(leader_object: dict | None) -> str | None:
    """The member holding the leader lease, from the HA manager's leader object (None: no one):
    Patroni's ConfigMap names it in an annotation, the agents' coordination Lease in its spec."""
    if (leader_object or {}).get("kind") == "Lease":
        return (leader_object.get("spec") or {}).get("holderIdentity") or None
    annotations = ((leader_object or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(LEADER_ANNOTATION) or None


def routes(server: Server) -> list[Route]:
    """Every endpoint of the server that kuberds routes: writer, reader, custom ones."""
    out = [Route(names.writer_service(server.name), "writer"), Route(names.reader_service(server.name), "reader")]
    for custom in server.custom_endpoints:
        service = names.custom_endpoint(server.name, custom.name)
        out.append(Route(service, "custom", custom.name, custom.type == "ANY", tuple(custom.static_members),
                         tuple(custom.excluded_members)))  # fmt: skip
    return out


def _routable(member: Member) -> bool:
    return bool(member.ip) and not member.deleting


def readers(members: list[Member], leader: str | None, max_lag: float) -> list[Member]:
    """Members that may serve reads: not the lease holder, ready, and known to be close enough."""
    return [m for m in members if m.name != leader and _routable(m) and m.ready and m.lag_seconds is not None
            and m.lag_seconds <= max_lag]  # fmt: skip


def chosen(route: Route, members: list[Member], leader: str | None, max_lag: float) -> list[Member]:
    """The members `route` sends clients to now."""
    writer = [m for m in members if m.name == leader and m.ip]
    ready_readers = readers(members, leader, max_lag)
    if route.role == "writer":
        return writer
    if route.role == "reader":
        return ready_readers or writer
    pool = ready_readers + (writer if route.with_writer else [])
    if route.static:
        pool = [m for m in pool if m.ordinal in route.static]
    return sorted((m for m in pool if m.ordinal not in route.excluded), key=lambda m: m.ordinal)


def endpoint_slice(server: Server, route: Route, members: list[Member]) -> dict:
    """The EndpointSlice of `route`'s Service, listing `members`. A deleting writer stays
    listed as serving and terminating: kube-proxy uses it only while no other endpoint is."""
    engine = server.spec.engine
    endpoints = []
    for member in members:
        endpoint = {
            "addresses": [member.ip],
            "conditions": {"ready": not member.deleting, "serving": True, "terminating": member.deleting},
            "targetRef": {"kind": "Pod", "namespace": server.owner.namespace, "name": member.name},
        }
        if member.node:
            endpoint["nodeName"] = member.node
        if member.zone:
            endpoint["zone"] = member.zone
        endpoints.append(endpoint)
    labels = {**server.labels(), SERVICE_NAME_LABEL: route.service, SLICE_MANAGER_LABEL: SLICE_MANAGER}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": server.owner.metadata(route.service, labels),
        "addressType": "IPv4",
        "ports": [{"name": engine, "port": server.port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def endpoint_slices(server: Server, members: list[Member], leader: str | None) -> list[tuple[Route, dict]]:
    """Every routed endpoint's slice, from the members as observed and the lease holder."""
    max_lag = server.reader_max_lag_seconds
    return [(r, endpoint_slice(server, r, chosen(r, members, leader, max_lag))) for r in routes(server)]
