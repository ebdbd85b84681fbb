"""Memcached (CacheCluster): in the API; its data plane is still to come."""

from kuberds.engines.base import EngineInfo

INFO = EngineInfo(name="memcached", family="cache", versions=("1.6",), default_port=11211)
