"""The PostgreSQL agent: Patroni for HA, pgBackRest for backups, composed of small parts.

agent        PostgresAgent: the engine side of the runtime (observe, perform, report)
patroni      Patroni's configuration for a member (pure)
patroni_api  Patroni's REST API on this member
pgbackrest   pgBackRest's configuration, command lines and `info` parsing (pure)
backups      the repositories: stanza, backups, snapshots, archive catch-up, restorable times
database     the agent's SQL: accounts, heartbeat, archiver and replication readings
tls          the served certificate copied for PostgreSQL
"""

from __future__ import annotations

import logging
import os


def main(use_kubernetes: bool = True) -> int:
    from kuberds.agent.decisions import Backoff
    from kuberds.agent.kube import AgentKube
    from kuberds.agent.pod import Pod
    from kuberds.agent.postgres.agent import PostgresAgent
    from kuberds.agent.runtime import Runtime
    from kuberds.contract.environment import Credentials
    from kuberds.contract.layouts import POSTGRES

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    kube = AgentKube.from_environment() if use_kubernetes else None
    pod, backoff = Pod.from_environment(POSTGRES), Backoff()
    engine = PostgresAgent(pod, Credentials.from_environment(dict(os.environ)), kube, backoff)
    return Runtime(engine, pod, kube, backoff).run()
