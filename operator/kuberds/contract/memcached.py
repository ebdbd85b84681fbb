"""Memcached between the operator and the agent of each node: the settings the operator hands
out (agent.json), the options memcached is started with, and ElastiCache Auto Discovery — the
membership the operator publishes in a ConfigMap and the answer every node's agent gives to
`config get cluster` on its discovery port (the cluster's configuration endpoint).

Auto Discovery, as ElastiCache cluster clients speak it:

    config get cluster\\r\\n
    CONFIG cluster 0 <bytes>\\r\\n
    <version>\\n
    <host>|<ip>|<port> <host>|<ip>|<port>\\n
    \\r\\n
    END\\r\\n

<bytes> counts the two lines between the header and the blank line; <version> grows by one
on every membership change, so a client polling the endpoint knows when to re-hash. Clients
older than memcached 1.4.14's `config` command ask `get AmazonElastiCache:cluster` and get
the same payload as a VALUE. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kuberds import codec
from kuberds.contract.settings import ClientTls

VERSION_KEY, NODES_KEY = "version", "nodes"
LEGACY_KEY = "AmazonElastiCache:cluster"
# The options kuberds passes to memcached, by the parameter names users set (lower case,
# ElastiCache's names) → memcached's flag. Values were judged by the operator's allow-list
# (kuberds.engines.memcached) and are passed as argv, never through a shell.
FLAGS = {
    "max_item_size": "--max-item-size",
    "chunk_size": "--slab-min-size",
    "chunk_size_growth_factor": "--slab-growth-factor",
    "max_simultaneous_connections": "--conn-limit",
    "threads": "--threads",
}
# Boolean parameters: the flag is given when the value is true.
SWITCHES = {"cas_disabled": "--disable-cas"}
# `-o` extended options that take a value.
EXTENDED = {"idle_timeout": "idle_timeout", "slab_automove": "slab_automove"}
TRUE_VALUES = {"1", "on", "true", "yes"}


def discovery_object(cluster: str) -> str:
    """The ConfigMap with the cluster's membership: written by the operator, read by the agents."""
    return f"{cluster}-discovery"


@dataclass(frozen=True)
class CacheAgentConfig:
    """agent.json of a Memcached node."""

    cluster: str
    namespace: str
    port: int
    memory_mb: int  # the item memory (-m): the node type's memory less what connections need
    parameters: dict[str, str] = field(default_factory=dict)  # allowed ones, already judged
    # TLS only, on the port and the Auto Discovery port alike (tls.crt, tls.key, ca.crt in its directory)
    tls: ClientTls | None = None

    def to_json(self) -> str:
        return json.dumps(codec.encode(self, codec.same, omit_none=False), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CacheAgentConfig:
        return codec.decode(cls, json.loads(text), codec.same)


def memcached_argv(
    program: str, config: CacheAgentConfig, listen: str = "0.0.0.0", port: int | None = None
) -> list[str]:
    """memcached's command line: TCP only (UDP is an amplification vector), TLS only when
    agent.json has TLS, no SASL. `port`: another than agent.json's (tests run several nodes
    on one host)."""
    argv = [program, f"--port={port or config.port}", "--udp-port=0", f"--listen={listen}",
            f"--memory-limit={config.memory_mb}"]  # fmt: skip
    extended = []
    if config.tls is not None:
        argv.append("--enable-ssl")
        extended += [f"ssl_chain_cert={config.tls.directory}/tls.crt", f"ssl_key={config.tls.directory}/tls.key",
                     "ssl_min_version=2"]  # fmt: skip
    for name, value in sorted(config.parameters.items()):
        key = name.lower()
        if key in FLAGS:
            argv.append(f"{FLAGS[key]}={value.strip()}")
        elif key in SWITCHES and value.strip().lower() in TRUE_VALUES:
            argv.append(SWITCHES[key])
        elif key in EXTENDED:
            extended.append(f"{EXTENDED[key]}={value.strip()}")
    if extended:
        argv.append("--extended=" + ",".join(extended))
    return argv


@dataclass(frozen=True)
class Node:
    host: str  # the node's stable DNS name (through the headless Service)
    ip: str  # its pod's address ("" while it has none)
    port: int

    def entry(self) -> str:
        return f"{self.host}|{self.ip}|{self.port}"

    @classmethod
    def parse(cls, entry: str) -> Node:
        host, ip, port = entry.split("|")
        return cls(host, ip, int(port))


@dataclass(frozen=True)
class Membership:
    version: int
    nodes: tuple[Node, ...]

    def data(self) -> dict[str, str]:
        """The ConfigMap's data."""
        return {VERSION_KEY: str(self.version), NODES_KEY: " ".join(n.entry() for n in self.nodes)}

    @classmethod
    def from_data(cls, data: dict | None) -> Membership | None:
        """None when the ConfigMap is missing or not one kuberds wrote."""
        data = data or {}
        try:
            version = int(data[VERSION_KEY])
            nodes = tuple(Node.parse(e) for e in data.get(NODES_KEY, "").split())
        except (KeyError, ValueError):
            return None
        return cls(version, nodes)

    def payload(self) -> bytes:
        return f"{self.version}\n{' '.join(n.entry() for n in self.nodes)}\n".encode()


def config_response(membership: Membership) -> bytes:
    payload = membership.payload()
    return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(payload), payload)


def legacy_response(membership: Membership) -> bytes:
    payload = membership.payload()
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (LEGACY_KEY.encode(), len(payload), payload)


def parse_config_response(data: bytes) -> Membership:
    """A client's reading of the answer to `config get cluster` (or the legacy get)."""
    header, _, rest = data.partition(b"\r\n")
    words = header.split()
    if len(words) != 4 or words[0] not in (b"CONFIG", b"VALUE"):
        raise ValueError(f"not a configuration answer: {header!r}")
    payload = rest[: int(words[3])].decode()
    version, _, nodes = payload.partition("\n")
    return Membership(int(version), tuple(Node.parse(e) for e in nodes.split()))


def next_membership(current: Membership | None, nodes: tuple[Node, ...]) -> Membership:
    """The version grows only when the nodes changed (clients re-hash on a new version)."""
    if current is None:
        return Membership(1, nodes)
    return current if current.nodes == nodes else Membership(current.version + 1, nodes)
