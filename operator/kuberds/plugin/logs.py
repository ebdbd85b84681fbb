"""The logs of a server's pods, every container, merged in time order.

A database pod runs one container named after its engine (builders/statefulset.py): the kuberds
agent, which starts the engine as its child (PostgreSQL under Patroni, mariadbd, redis-server,
memcached). The engine writes to stderr, which it inherits from the agent, so the container's
log interleaves the agent's lines (`kuberds.agent INFO: …`), Patroni's (`patroni INFO: …`) and
the engine's own (PostgreSQL: `… UTC [pid] LOG:  …`). Proxy pods (`--proxy`) run PgBouncer
under its supervisor the same way.

The API gives each line the kubelet's timestamp (timestamps=true); lines are ordered by it,
with nanoseconds (the kubelet drops trailing zeros, so text order would be wrong).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from kuberds.plugin.client import Client
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import PROXY, KindInfo, name_of, pod_selector
from kuberds.plugin.text import parse_precise

_BEFORE_ALL = (datetime.min.replace(tzinfo=UTC), 0)


@dataclass(frozen=True)
class Line:
    pod: str
    container: str
    timestamp: str  # as the kubelet wrote it ("" when the line had none)
    text: str
    key: tuple[datetime, int]  # the moment, to the nanosecond

    def format(self, timestamps: bool = True) -> str:
        stamp = f" {self.timestamp}" if timestamps and self.timestamp else ""
        return f"[{self.pod}/{self.container}]{stamp} {self.text}"


def parse_stream(pod: str, container: str, raw: str) -> list[Line]:
    """One container's log as the API returns it with timestamps=true, in time order. A line
    without a timestamp (a partial last line) keeps its place after the one before it."""
    lines, last = [], _BEFORE_ALL
    for raw_line in raw.splitlines():
        stamp, _, text = raw_line.partition(" ")
        parsed = parse_precise(stamp)
        if parsed is None:
            stamp, text, parsed = "", raw_line, last
        last = parsed
        lines.append(Line(pod, container, stamp, text, parsed))
    return sorted(lines, key=lambda line: line.key)  # stable: equal times keep their order


def merge(streams: Iterable[list[Line]]) -> list[Line]:
    """All streams as one, in time order; equal times in the order the streams were given."""
    return list(heapq.merge(*streams, key=lambda line: line.key))


def containers(pod: dict) -> list[str]:
    pod_spec = pod.get("spec") or {}
    return [c["name"] for c in (*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or []))]


@dataclass
class Request:
    member: str | None = None
    container: str | None = None
    since_seconds: int | None = None
    tail: int | None = None
    previous: bool = False
    proxy: bool = False


def server_pods(client: Client, info: KindInfo, obj: dict, member: str | None, proxy: bool) -> list[dict]:
    name = name_of(obj)
    pods = client.pods(pod_selector(info, name))
    if proxy:
        pods += client.pods(pod_selector(info, name, PROXY))
    if member:
        chosen = [p for p in pods if p["metadata"]["name"] == member]
        if not chosen:
            listed = ", ".join(p["metadata"]["name"] for p in pods) or "none"
            raise PluginError(f"{member} is not a pod of {info.kind} {name} (its pods: {listed})")
        return chosen
    if not pods:
        raise PluginError(f"{info.kind} {name} has no pods in namespace {client.namespace} yet")
    return pods


def collect(client: Client, info: KindInfo, obj: dict, request: Request) -> tuple[list[Line], list[str]]:
    """The merged lines, and a note for each container whose log could not be read."""
    streams, notes = [], []
    for pod in server_pods(client, info, obj, request.member, request.proxy):
        pod_name = pod["metadata"]["name"]
        for container in containers(pod):
            if request.container and container != request.container:
                continue
            try:
                raw = client.log(pod_name, container, since_seconds=request.since_seconds, tail=request.tail,
                                 previous=request.previous)  # fmt: skip
            except PluginError as error:
                if "forbidden" in str(error):
                    raise
                notes.append(f"{pod_name}/{container}: no log: {error}")
                continue
            streams.append(parse_stream(pod_name, container, raw))
    lines = merge(streams)
    if request.tail is not None:
        lines = lines[-request.tail :] if request.tail else []
    return lines, notes
