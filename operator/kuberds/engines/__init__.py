"""Database and cache engines. Everything kuberds knows about an engine lives in its module
here (the operator's side: what the API offers, the pods' shape, parameters, the HA
manager's API) and in its agent package, kuberds.agent.<engine> (the pod's side). The rest
of the operator asks the engine instead of asking which engine it is; every engine list in
the code (the API's enums, images, the agent command) is read from MODULES.

Adding an engine: a module here with INFO (and ENGINE once it runs), its pod layout in
kuberds.contract.layouts, its agent package, and its image target in the Dockerfile.
"""

from __future__ import annotations

from kuberds.engines import mariadb, memcached, mysql, postgres, redis
from kuberds.engines.base import AgentRequest, CacheEngine, Engine, EngineInfo, Family

MODULES = (postgres, mysql, mariadb, redis, memcached)
INFOS: dict[str, EngineInfo] = {m.INFO.name: m.INFO for m in MODULES}
# Engines whose data plane runs, by family; the others are accepted by the API and told so.
_RUNNING = [m for m in MODULES if getattr(m, "ENGINE", None)]
ENGINES: dict[str, Engine] = {m.INFO.name: m.ENGINE for m in _RUNNING if m.INFO.family == "database"}
CACHE_ENGINES: dict[str, CacheEngine] = {m.INFO.name: m.ENGINE for m in _RUNNING if m.INFO.family == "cache"}


def engine_for(name: str) -> Engine | None:
    """The engine, or None while its data plane is not implemented."""
    return ENGINES.get(name)


def cache_engine_for(name: str) -> CacheEngine | None:
    """The cache engine, or None while its data plane is not implemented."""
    return CACHE_ENGINES.get(name)


def info(name: str) -> EngineInfo:
    return INFOS[name]


def names(family: Family) -> tuple[str, ...]:
    return tuple(n for n, i in INFOS.items() if i.family == family)


def versions(family: Family) -> dict[str, tuple[str, ...]]:
    return {n: i.versions for n, i in INFOS.items() if i.family == family}


def managed_parameters() -> list[str]:
    """Every engine's, in one list (the API refuses them whatever the engine)."""
    return sorted({p for i in INFOS.values() for p in i.managed_parameters})


def reserved_usernames() -> list[str]:
    return sorted({u for i in INFOS.values() for u in i.reserved_usernames})


__all__ = [
    "CACHE_ENGINES",
    "ENGINES",
    "INFOS",
    "MODULES",
    "AgentRequest",
    "CacheEngine",
    "Engine",
    "EngineInfo",
    "cache_engine_for",
    "engine_for",
    "info",
    "names",
]
