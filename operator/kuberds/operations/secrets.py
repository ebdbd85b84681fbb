"""Secrets a server reads: users' references checked, generated credentials made once. Pure."""

from __future__ import annotations

import base64
import secrets

from kuberds.builders.status import FALSE, Condition


def secret_text(secret: dict | None, key: str) -> str | None:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


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
