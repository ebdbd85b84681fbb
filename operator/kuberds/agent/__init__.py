"""The in-pod agent (instance manager): one process per database pod.

config      the contract with the operator (agent.json, secrets from the environment, the pod)
patroni     Patroni's configuration for a member (pure)
decisions   observation in, readable steps out (pure)
report      Prometheus metrics and the pod annotation the operator reads
postgres    the PostgreSQL agent: runs Patroni, performs the steps
"""
