"""Database engines behind one small interface.

The operator never asks "which engine is this?": it asks the engine. An `Engine` says
what its pods look like to Kubernetes — ports, probes, mount points, the parameters it
derives from a spec, and the API rights its in-pod agent needs. Everything engine-specific
that the operator builds goes through these methods, so adding MySQL means adding a
module here, not editing builders.

Contract:
- methods are pure (no I/O) and deterministic for the same inputs;
- `parameters()` returns the engine's configuration as name → string, user parameters
  applied last (the schema has already refused the ones kuberds manages);
- `probes()` must not make the kubelet kill a healthy primary because the API server is
  unreachable: liveness checks the local process only;
- `switchover()` describes the request to the primary's agent that hands the primary role to
  `candidate` and answers 2xx only once it has happened (the operator sends it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from kuberds.api.classes import Size


@dataclass(frozen=True)
class AgentRequest:
    """An HTTP request to a pod's agent port; the engine describes it, the operator sends it."""

    method: str
    path: str
    body: dict = field(default_factory=dict)


class Engine(Protocol):
    name: str
    default_port: int
    agent_port: int  # the in-pod agent's HTTP port (health, and the HA manager's API)
    metrics_port: int
    uid: int  # the non-root user the image runs as
    data_path: str  # where the data volume is mounted
    writable_paths: tuple[str, ...]  # emptyDirs needed with a read-only root filesystem

    def parameters(self, size: Size, user: dict[str, str]) -> dict[str, str]: ...

    def probes(self) -> dict[str, dict]: ...

    def agent_rules(self) -> list[dict]: ...

    def switchover(self, leader: str, candidate: str) -> AgentRequest: ...


def engine_for(name: str) -> Engine | None:
    """The engine, or None while its data plane is not implemented."""
    from kuberds.engines.postgres import POSTGRES

    return {"postgres": POSTGRES}.get(name)
