"""The members of a server and how an agent reaches each (the agents that decide among
themselves: Redis, MariaDB). In a pod, members are addressed by their pods' IPs, read through
the API: the DNS names of pods that do not exist yet would be cached as missing for half a
minute. Tests name the addresses in an environment variable instead."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kuberds.agent.kube import AgentKube, KubeError

log = logging.getLogger("kuberds.agent")

LOOKUP_SECONDS = 3.0  # a member that does not answer has its pod's IP read again at most this often


@dataclass(frozen=True)
class Address:
    host: str
    port: int


def parse_given(text: str) -> dict[str, Address]:
    """`name=host:port,…` (the tests' list)."""
    pairs = (item.split("=", 1) for item in text.split(","))
    return {name: Address(hostport.rsplit(":", 1)[0], int(hostport.rsplit(":", 1)[1])) for name, hostport in pairs}


def ordinal(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


class Peers:
    def __init__(self, me: str, addresses: dict[str, Address], kube: AgentKube | None, namespace: str,
                 my_ip: str, port: int, by_pod_ip: bool):  # fmt: skip
        """`addresses`: every member's, by name (the DNS names, or the tests' list); with
        `by_pod_ip` each is replaced by its pod's IP on first sight and when it stops answering."""
        self.me, self.kube, self.namespace, self.port = me, kube, namespace, port
        self.addresses = dict(addresses)
        self.by_pod_ip = by_pod_ip and kube is not None
        if self.by_pod_ip:
            self.addresses[me] = Address(my_ip, port)
        self.ordinals = {name: i for i, name in enumerate(sorted(self.addresses, key=ordinal))}
        self.looked_up: dict[str, float] = {}

    def others(self) -> list[str]:
        return [name for name in self.addresses if name != self.me]

    def name_of(self, address: Address) -> str | None:
        return next((name for name, known in self.addresses.items() if known == address), None)

    def look_up(self, name: str, answered: bool) -> Address | None:
        """The member's new address when its pod's IP changed; read on first sight, and again
        (at most every few seconds) while it does not answer. None: unchanged or unknown."""
        if not self.by_pod_ip or (answered and name in self.looked_up):
            return None
        now = time.monotonic()
        if now - self.looked_up.get(name, -LOOKUP_SECONDS) < LOOKUP_SECONDS:
            return None
        self.looked_up[name] = now
        try:
            ip = ((self.kube.get("Pod", self.namespace, name) or {}).get("status") or {}).get("podIP")
        except KubeError as error:
            log.warning("looking up %s: %s", name, error)
            return None
        if not ip or self.addresses[name].host == ip:
            return None
        self.addresses[name] = Address(ip, self.port)
        return self.addresses[name]
