"""The Secrets kuberds makes for a server. Pure: the handler generates the random values.

Generated credentials are created once and never overwritten (create-if-absent): a
password that changes under a running server would lock its agents out.
"""

from __future__ import annotations

import base64

from kuberds.builders import names
from kuberds.builders.cache import Cache
from kuberds.builders.certificates import KeyPair
from kuberds.builders.server import Server
from kuberds.contract import environment


def _secret(meta: dict, kind: str, string_data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": kind, "stringData": string_data}


def master_secret(server: Server, password: str) -> dict:
    return _secret(server.meta(server.master_secret), "kubernetes.io/basic-auth",
                   {"username": server.spec.master_username, environment.MASTER_PASSWORD.key: password})  # fmt: skip


def agent_credentials(server: Server, passwords: list[str]) -> dict:
    """One generated password per key of contract.environment.GENERATED_CREDENTIALS."""
    keys = [var.key for var in environment.GENERATED_CREDENTIALS]
    return _secret(server.meta(names.agent_credentials(server.name)), "Opaque",
                   dict(zip(keys, passwords, strict=True)))  # fmt: skip


def missing_credential_keys(secret: dict) -> list[str]:
    """The agent-credentials keys a Secret made by an earlier kuberds lacks (the API and rewind
    passwords came later, then the proxy's)."""
    present = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    return [var.key for var in environment.GENERATED_CREDENTIALS if var.key not in present]


def backup_key(server: Server, passphrase: str) -> dict:
    """Not owned by the server: deleting the server must not make its snapshots unreadable."""
    meta = server.owner.metadata(names.backup_key(server.name), server.labels(), owned=False)
    return _secret(meta, "Opaque", {environment.BACKUP_STORE.cipher_pass.key: passphrase})


def ca_secret(server: Server | Cache, ca: KeyPair) -> dict:
    """Created once (create-if-absent); owned: a new server gets a new CA."""
    return _secret(server.meta(names.ca_secret(server.name)), "Opaque", {"ca.crt": ca.certificate, "ca.key": ca.key})


def tls_secret(server: Server | Cache, ca_certificate: str, served: KeyPair) -> dict:
    """Applied (server-side) whenever reissued, so `data`, not the write-only stringData."""
    values = {"tls.crt": served.certificate, "tls.key": served.key, "ca.crt": ca_certificate}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": server.meta(names.tls_secret(server.name)),
        "type": "kubernetes.io/tls",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }
