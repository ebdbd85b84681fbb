"""The Redis agent: one per member. It runs redis-server as the image's user with a
redis.conf written from agent.json (no persistence, authenticated clients, read-only
replicas, a primary that stops taking writes when no replica keeps up), decides who is
primary over a Kubernetes Lease with the other members' agents, moves the role label the
primary and reader endpoints select on, and exports kuberds_redis_* metrics.

    decide   the HA rules: what was observed in, one readable action out (pure)
    config   redis.conf (pure)
    agent    the supervisor loop, readiness, the report
    users    the spec's ACL users, kept on this member's Redis
    metrics  the metrics, from INFO
"""

from __future__ import annotations


def main(use_kubernetes: bool = True) -> int:
    from kuberds.agent.redis.agent import main as run

    return run(use_kubernetes)
