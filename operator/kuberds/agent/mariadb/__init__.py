"""The MariaDB agent: one per member. It installs the system tables on first start, runs
mariadbd as the image's user with a my.cnf written from agent.json (GTID replication,
semi-synchronous AFTER_SYNC without fallback while Multi-AZ, read-only until it is primary),
decides who is primary over a Kubernetes Lease with the other members' agents, and moves the
role label the writer and reader endpoints select on.

    gtid      GTID positions: parse, compare, the transactions one has and another lacks (pure)
    decide    the HA rules: what was observed in, one readable action out (pure)
    config    my.cnf (pure)
    accounts  the accounts kuberds keeps and the master user's grants (pure)
    server    this member's mariadbd and the SQL the agent speaks to it and its peers
    agent     the supervisor loop, readiness, the report
"""

from __future__ import annotations


def main(use_kubernetes: bool = True) -> int:
    from kuberds.agent.mariadb.agent import main as run

    return run(use_kubernetes)
