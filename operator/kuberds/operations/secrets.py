"""Secrets a server reads: users' references checked, generated credentials made once. Pure."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kuberds.api import v1alpha1 as api
from kuberds.builders import settings
from kuberds.builders.status import FALSE, Condition
from kuberds.config import OperatorConfig
from kuberds.contract import environment

STORE_KEYS = (environment.BACKUP_STORE.access_key.key, environment.BACKUP_STORE.secret_key.key)
PASSPHRASE_KEYS = (environment.BACKUP_STORE.cipher_pass.key,)


def not_reconciled(reason: str, message: str) -> Condition:
    return Condition("Reconciled", FALSE, reason, message)


def reference_problem(secret: dict | None, name: str, field: str, keys: tuple[str, ...]) -> Condition | None:
    """A Secret a spec field names: missing, or without a key it must have, is a condition
    that names the field and the Secret."""
    if secret is None:
        return not_reconciled("SecretNotFound", f"Secret {name} ({field}) does not exist")
    missing = sorted(set(keys) - set(secret.get("data") or {}))
    if missing:
        return not_reconciled("SecretInvalid", f"Secret {name} ({field}) has no key {', '.join(missing)}")
    return None


def new_token(length: int = 24) -> str:
    """A generated password or passphrase (URL-safe, `length` random bytes)."""
    return secrets.token_urlsafe(length)


@dataclass(frozen=True)
class Reference:
    """A Secret a server reads keys from, and where its name came from (for the message)."""

    secret: str
    source: str
    keys: tuple[str, ...]


def references(spec: api.ServerSpec, config: OperatorConfig) -> list[Reference]:
    """Every Secret of the user's that a spec names (the generated ones are kuberds' own)."""
    refs = []
    if spec.master_user_secret_name:
        refs.append(Reference(spec.master_user_secret_name, "masterUserSecretName", (environment.MASTER_PASSWORD.key,)))
    if spec.tls.enabled and spec.tls.certificate_secret_name:
        refs.append(Reference(spec.tls.certificate_secret_name, "tls.certificateSecretName", ("tls.crt", "tls.key")))
    store = settings.object_store(spec, config)
    if store:
        where = "backup.objectStore" if spec.backup.object_store else "the operator's default object store"
        refs.append(Reference(store.credentials_secret_name, f"{where}.credentialsSecretName", STORE_KEYS))
        if store.ca_secret_name:
            refs.append(Reference(store.ca_secret_name, f"{where}.caSecretName", ("ca.crt",)))
        if spec.backup.encryption.enabled and spec.backup.encryption.key_secret_name:
            refs.append(Reference(spec.backup.encryption.key_secret_name, "backup.encryption.keySecretName",
                                  PASSPHRASE_KEYS))  # fmt: skip
    return refs


def first_problem(refs: list[Reference], read: dict[str, dict | None]) -> Condition | None:
    """The first reference whose Secret is missing or lacks a key it must have."""
    for ref in refs:
        problem = reference_problem(read.get(ref.secret), ref.secret, ref.source, ref.keys)
        if problem:
            return problem
    return None
