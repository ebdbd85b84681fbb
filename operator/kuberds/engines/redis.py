"""Redis (CacheCluster): in the API; its data plane (Sentinel, agent, image) is still to come."""

from kuberds.engines.base import EngineInfo

INFO = EngineInfo(name="redis", family="cache", versions=("7.0",), default_port=6379)
