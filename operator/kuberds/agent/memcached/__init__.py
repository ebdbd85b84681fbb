"""The Memcached agent: one per cache node. It runs memcached as the image's user with the
options agent.json gives (argv only), serves ElastiCache Auto Discovery on the agent port
from the membership the operator publishes, exports kuberds_memcached_* metrics from
memcached's own `stats`, and reports on its pod.

    agent      the supervisor loop and the metrics
    discovery  the configuration endpoint's protocol server
"""

from __future__ import annotations

import logging


def main(use_kubernetes: bool = True) -> int:
    from kuberds.agent.kube import AgentKube
    from kuberds.agent.memcached.agent import MemcachedAgent
    from kuberds.agent.pod import Pod
    from kuberds.contract.layouts import MEMCACHED

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    kube = AgentKube.from_environment() if use_kubernetes else None
    return MemcachedAgent(Pod.from_environment(MEMCACHED), kube).run()
