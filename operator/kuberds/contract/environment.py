"""The environment of a database pod's container: what the operator puts there (the
StatefulSet builder) and what the agent reads (kuberds.agent.pod). Secrets come only from
Secret references, never as values: each secret variable says which key of its Secret it
holds, so both sides — and the operator reading a live pod template back — use one list.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

# The downward API: who the pod is.
POD_NAME = "POD_NAME"
POD_NAMESPACE = "POD_NAMESPACE"
POD_IP = "POD_IP"
# The container's memory limit in bytes: tells the agent whether this pod already has the
# instance class agent.json is for (the operator replaces pods of another class).
MEMORY_LIMIT = "KUBERDS_MEMORY_LIMIT"


@dataclass(frozen=True)
class SecretVar:
    """An environment variable filled from one key of a Secret."""

    env: str
    key: str
    optional: bool = False  # the pod starts without it (a Secret made before the key existed)


MASTER_PASSWORD = SecretVar("KUBERDS_MASTER_PASSWORD", "password")
# A cache's AUTH password (Redis's default user), from spec.auth's Secret or the generated one.
CACHE_PASSWORD = SecretVar("KUBERDS_CACHE_PASSWORD", "password")
# The agents' own Redis user (replication, REPLICAOF, ACL, CONFIG): generated, never given to
# applications, whose users may not run those commands.
CACHE_ADMIN_PASSWORD = SecretVar("KUBERDS_CACHE_ADMIN_PASSWORD", "admin-password")
SUPERUSER_PASSWORD = SecretVar("KUBERDS_SUPERUSER_PASSWORD", "superuser-password")
REPLICATION_PASSWORD = SecretVar("KUBERDS_REPLICATION_PASSWORD", "replication-password")
# Optional, these two: a pod made before the key existed starts without it (the operator adds
# missing keys to the Secret, and the rolling update brings them to the pods).
API_PASSWORD = SecretVar("KUBERDS_AGENT_API_PASSWORD", "api-password", optional=True)
REWIND_PASSWORD = SecretVar("KUBERDS_REWIND_PASSWORD", "rewind-password", optional=True)
# The proxy's own login on the server (it looks passwords up with it): the database pods set
# it, the proxy pods log in with it.
PROXY_PASSWORD = SecretVar("KUBERDS_PROXY_PASSWORD", "proxy-password", optional=True)
# The proxy's admin console (PAUSE, RESUME, SHOW): the proxy pods and the operator only.
PROXY_CONSOLE_PASSWORD = SecretVar("KUBERDS_PROXY_CONSOLE_PASSWORD", "proxy-console-password", optional=True)
# What a database pod's container gets from the generated NAME-agent-credentials Secret.
AGENT_CREDENTIALS = (SUPERUSER_PASSWORD, REPLICATION_PASSWORD, API_PASSWORD, REWIND_PASSWORD, PROXY_PASSWORD)
# What a proxy pod's container gets from it.
PROXY_CREDENTIALS = (PROXY_PASSWORD, PROXY_CONSOLE_PASSWORD)
# Every key of that Secret, in the order they are generated.
GENERATED_CREDENTIALS = (*AGENT_CREDENTIALS, PROXY_CONSOLE_PASSWORD)


@dataclass(frozen=True)
class StoreVars:
    """An object store's keys and a repository's passphrase: one set for the server's own
    backups, one for the repository a restore reads (the source's)."""

    prefix: str

    @property
    def access_key(self) -> SecretVar:
        return SecretVar(f"{self.prefix}_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")

    @property
    def secret_key(self) -> SecretVar:
        return SecretVar(f"{self.prefix}_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")

    @property
    def cipher_pass(self) -> SecretVar:
        return SecretVar(f"{self.prefix}_CIPHER_PASS", "key")


BACKUP_STORE = StoreVars("KUBERDS_BACKUP")
RESTORE_STORE = StoreVars("KUBERDS_RESTORE")
# Every variable that holds a secret: the agent reads them once and hands none of them on to
# the engine's processes (a backend inherits its postmaster's environment).
SECRET_VARS = (MASTER_PASSWORD, CACHE_PASSWORD, CACHE_ADMIN_PASSWORD, *GENERATED_CREDENTIALS,
               *(var for store in (BACKUP_STORE, RESTORE_STORE)
                 for var in (store.access_key, store.secret_key, store.cipher_pass)))  # fmt: skip


def secret_text(secret: dict | None, key: str) -> str | None:
    """One key of a Secret object as read from the API (base64 `data`), decoded; None when absent.
    The operator reads users' Secrets with it, a cache agent its ACL users' passwords."""
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


def secret_env(var: SecretVar, secret: str) -> dict:
    """The container env entry that fills `var` from Secret `secret`."""
    reference = {"name": secret, "key": var.key, **({"optional": True} if var.optional else {})}
    return {"name": var.env, "valueFrom": {"secretKeyRef": reference}}


def store_env(store: StoreVars, credentials_secret: str | None, key_secret: str | None) -> list[dict]:
    env = []
    if credentials_secret:
        env += [secret_env(store.access_key, credentials_secret), secret_env(store.secret_key, credentials_secret)]
    if key_secret:
        env.append(secret_env(store.cipher_pass, key_secret))
    return env


def secret_names(env: list[dict], store: StoreVars) -> tuple[str | None, str | None]:
    """(credentials Secret, key Secret) that a container's env fills `store` from."""
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    return refs.get(store.access_key.env), refs.get(store.cipher_pass.env)


@dataclass(frozen=True)
class Credentials:
    """The secrets an agent works with, read from its environment."""

    superuser_password: str
    replication_password: str
    master_password: str
    api_password: str | None = None  # the HA API's unsafe endpoints; None leaves them open
    rewind_password: str | None = None  # None: pg_rewind as the superuser, which the network refuses
    proxy_password: str | None = None  # None: no proxy login (a pod made before the key existed)
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    cipher_pass: str | None = None
    restore_s3_access_key: str | None = None
    restore_s3_secret_key: str | None = None
    restore_cipher_pass: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Credentials:
        def get(var: SecretVar) -> str | None:
            return env.get(var.env) or None

        return cls(
            superuser_password=env[SUPERUSER_PASSWORD.env],
            replication_password=env[REPLICATION_PASSWORD.env],
            master_password=env[MASTER_PASSWORD.env],
            api_password=get(API_PASSWORD),
            rewind_password=get(REWIND_PASSWORD),
            proxy_password=get(PROXY_PASSWORD),
            s3_access_key=get(BACKUP_STORE.access_key),
            s3_secret_key=get(BACKUP_STORE.secret_key),
            cipher_pass=get(BACKUP_STORE.cipher_pass),
            restore_s3_access_key=get(RESTORE_STORE.access_key),
            restore_s3_secret_key=get(RESTORE_STORE.secret_key),
            restore_cipher_pass=get(RESTORE_STORE.cipher_pass),
        )
