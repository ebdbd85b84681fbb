"""MariaDB between the operator and the agent of each member. Pure.

agent.json is the database servers' AgentConfig (kuberds.contract.settings), read the same way
as PostgreSQL's; what differs is said here: the leader Lease the agents decide over (as the
Redis agents do: the primary's agent holds `NAME-leader`, a coordination.k8s.io Lease), the
accounts kuberds keeps on every server, and how tests name the members' addresses.

The HA rules are the agents' (kuberds.agent.mariadb.decide); what makes a failover lose no
acknowledged commit is semi-synchronous replication AFTER_SYNC that never falls back to
asynchronous while the server is Multi-AZ (AgentConfig.synchronous).
"""

from __future__ import annotations

from kuberds.contract.redis import lease_name

# Accounts kuberds keeps (users may not take these names). The agents reach their peers and
# replicas reach the primary with them; passwords come from the agent-credentials Secret
# (environment.SUPERUSER_PASSWORD for the agent's, REPLICATION_PASSWORD for replication).
AGENT_USER = "kuberds_agent"
REPLICATION_USER = "kuberds_repl"
GTID_DOMAIN = 0  # one writer at a time: every transaction in one domain

PEERS_ENV = "KUBERDS_MARIADB_PEERS"  # tests: name=host:port,… (in a pod: the pods' IPs, read through the API)

__all__ = ["AGENT_USER", "GTID_DOMAIN", "PEERS_ENV", "REPLICATION_USER", "lease_name"]
