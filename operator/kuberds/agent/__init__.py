"""The in-pod agent (instance manager): one process per database pod. Nothing here imports
the operator's modules; the two sides meet in kuberds.contract.

    runtime     the engine-neutral loop: reload, observe, decide, act (with back-off), report
    decisions   observation in, readable steps out (pure)
    schedule    when an automated backup is due, and how healthy archiving is (pure)
    snapshots   the server's DBSnapshots as requests, and their status
    report      Prometheus metrics and the report on the pod
    pod         who this member is and where its files are
    processes   the engine's programs as its OS user; one background job at a time
    kube        the agent's bounded Kubernetes client
    postgres    the PostgreSQL agent (Patroni, pgBackRest)
    redis, mariadb, memcached
                the agents that supervise their engine themselves; Redis and MariaDB decide who is
                primary over a Lease (lease), reach their members (peers), answer probes (health)

Adding an engine: a package kuberds.agent.<engine> with main() and an EngineAgent
(kuberds.agent.runtime); `kuberds agent <engine>` finds it by name.
"""
