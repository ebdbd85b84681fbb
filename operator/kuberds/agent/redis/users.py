"""The spec's ACL users on this member's Redis. ACLs are not replicated, so every member's
agent applies them; each loop re-reads agent.json (the kubelet refreshes the mount) and the
users' password Secrets (by name: the agent may read those and no other), re-applies a user
whose rules or password changed, and deletes the users gone from the spec."""

from __future__ import annotations

import hashlib
import logging

import redis

from kuberds.agent.pod import Pod
from kuberds.contract import SETTINGS_FILE, environment
from kuberds.contract.environment import secret_text
from kuberds.contract.redis import RedisAgentConfig, acl_setuser

log = logging.getLogger("kuberds.agent")


class AclUsers:
    def __init__(self, kube, pod: Pod):
        self.kube, self.pod = kube, pod
        self.applied: dict[str, str] = {}  # user → fingerprint of what was applied

    def keep(self, local: redis.Redis) -> None:
        try:
            users = RedisAgentConfig.from_json((self.pod.config_dir / SETTINGS_FILE).read_text()).users
        except (OSError, ValueError) as error:
            log.warning("reading agent.json: %s", error)
            return
        for user in users:
            secret = self.kube.get("Secret", self.pod.namespace, user.password_secret) if self.kube else None
            password = secret_text(secret, environment.CACHE_PASSWORD.key)
            if not password:
                log.warning("ACL user %s: Secret %s has no password yet", user.name, user.password_secret)
                continue
            arguments = acl_setuser(user, password)
            fingerprint = hashlib.sha256("\0".join(arguments).encode()).hexdigest()
            if self.applied.get(user.name) != fingerprint:
                local.execute_command("ACL", "SETUSER", *arguments)
                self.applied[user.name] = fingerprint
                log.info("ACL user %s applied", user.name)
        for gone in set(self.applied) - {u.name for u in users}:
            local.execute_command("ACL", "DELUSER", gone)
            del self.applied[gone]
            log.info("ACL user %s deleted", gone)
