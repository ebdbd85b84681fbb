"""redis.conf of a member, from agent.json and the pod. Pure.

Values come from agent.json, whose parameters the operator judged against its allow-list;
each directive is still written on a line of its own with no control characters, so no
value can add a directive.
"""

from __future__ import annotations

import re

from kuberds.contract.redis import MIN_REPLICAS_MAX_LAG, RedisAgentConfig, tls_port_beside

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Commands that can hurt the server or read its files: only an admin user may run them.
DANGEROUS = ("@dangerous",)


def _quoted(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError("a redis.conf value has control characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


ADMIN_USER = "kuberds-admin"  # the agents' own user: every command
REPLICATION_USER = "kuberds"  # replicas sync as this user, which only a primary that took the lease has
# The application's default user may do anything with the data but not the server: no
# replication, REPLICAOF, ACL, CONFIG, SHUTDOWN (the HA rules rest on those).
DEFAULT_RULES = ("~*", "&*", "+@all", "-@admin")


def tls_lines(config: RedisAgentConfig, port: int) -> dict[str, str]:
    """TLS for clients and replication; clients need no certificate of their own (AUTH is
    theirs), replicas verify the primary's against the CA."""
    if config.tls is None:
        return {}
    directory = config.tls.directory
    return {
        "tls-port": str(port if config.tls.require else tls_port_beside(port)),
        "tls-cert-file": _quoted(f"{directory}/tls.crt"),
        "tls-key-file": _quoted(f"{directory}/tls.key"),
        "tls-ca-cert-file": _quoted(config.tls.ca_file or f"{directory}/ca.crt"),
        "tls-auth-clients": "no",
        "tls-replication": "yes",
        "tls-protocols": '"TLSv1.2 TLSv1.3"',
    }


def redis_conf(config: RedisAgentConfig, *, password: str, admin_password: str, listen: str, port: int,
               announce_ip: str, data_dir: str) -> str:  # fmt: skip
    """No persistence (a member that restarts is re-synced from the primary; snapshots are
    RDB files taken on demand), replicas read-only, a primary that takes writes only while a
    replica keeps up, every client authenticated, and the server's own commands kept for the
    agents' user."""
    lines = {
        "port": str(port if config.plain_port is not None else 0),
        "bind": listen,
        "protected-mode": "yes",
        "daemonize": "no",
        "dir": _quoted(data_dir),
        "save": '""',
        "appendonly": "no",
        "maxmemory": f"{config.maxmemory_mb}mb",
        "maxmemory-policy": "volatile-lru",
        "replica-read-only": "yes",
        "replica-announce-ip": announce_ip,
        "repl-diskless-sync": "yes",
        "repl-diskless-sync-delay": "0",
        "min-replicas-to-write": str(config.min_replicas_to_write),
        "min-replicas-max-lag": str(MIN_REPLICAS_MAX_LAG),
        "masteruser": REPLICATION_USER,  # only a primary that took the lease has it
        "masterauth": _quoted(admin_password),
        "enable-debug-command": "no",
        "enable-module-command": "no",
        "enable-protected-configs": "no",
    }
    lines |= tls_lines(config, port)
    for name, value in sorted(config.parameters.items()):
        lines[name.lower()] = _quoted(value)
    users = [f"user default on {_quoted('>' + password)} {' '.join(DEFAULT_RULES)}\n",
             f"user {ADMIN_USER} on {_quoted('>' + admin_password)} ~* &* +@all\n"]  # fmt: skip
    return "".join(f"{name} {value}\n" for name, value in lines.items()) + "".join(users)
