"""Client TLS: the server's CA, made once, and the served certificate, (re)issued when it is
missing, names other endpoints, was signed by another CA, or nears its expiry (the resync
timer brings every server here regularly). Pure: the pass reads both Secrets first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kuberds.builders import certificates, names
from kuberds.builders import secrets as secret_build
from kuberds.builders.cache import Cache
from kuberds.builders.server import Server, endpoint_names
from kuberds.contract.environment import secret_text


@dataclass(frozen=True)
class CertificatePlan:
    create_ca: dict | None = None  # the CA Secret, when there is none yet
    served: dict | None = None  # the certificate Secret to apply, when (re)issued
    reason: str = ""  # why it was issued (the Event says so)


def plan(server: Server | Cache, ca_secret: dict | None, served_secret: dict | None, now: datetime,
         dns: list[str] | None = None) -> CertificatePlan:  # fmt: skip
    """`dns`: the names the certificate serves (a server's endpoints when None)."""
    create_ca = None
    if ca_secret is None:
        ca = certificates.new_ca(f"kuberds CA {server.name}.{server.owner.namespace}", now)
        create_ca = secret_build.ca_secret(server, ca)
    else:
        ca = certificates.KeyPair(secret_text(ca_secret, "ca.crt") or "", secret_text(ca_secret, "ca.key") or "")
    dns = endpoint_names(server) if dns is None else dns
    reason = certificates.reissue_reason(secret_text(served_secret, "tls.crt"), ca.certificate, dns, now)
    if reason is None and secret_text(served_secret, "ca.crt") == ca.certificate:
        return CertificatePlan(create_ca)
    served = secret_build.tls_secret(server, ca.certificate, certificates.server_certificate(ca, dns, now))
    return CertificatePlan(create_ca, served, reason or "the CA it is published with changed")


def secret_names(server: Server | Cache) -> tuple[str, str]:
    """The CA's and the served certificate's Secrets (the pass reads both)."""
    return names.ca_secret(server.name), names.tls_secret(server.name)
