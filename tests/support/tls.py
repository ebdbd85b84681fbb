"""Certificates for members run on this host, issued as the operator's pass issues them (the
cluster's CA and one certificate for every member), and the client side that trusts them."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from kuberds.builders import certificates


def issue(directory: Path, dns_names: list[str]) -> None:
    """tls.crt, tls.key and ca.crt in `directory`, readable by the engine's user (in a pod the
    fsGroup reads them; here the engine runs as another user than the agent)."""
    now = datetime.now(UTC)
    ca = certificates.new_ca(f"kuberds CA {directory.parent.name}", now)
    served = certificates.server_certificate(ca, ["localhost", *dns_names], now)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for file, text in (("tls.crt", served.certificate), ("tls.key", served.key), ("ca.crt", ca.certificate)):
        (directory / file).write_text(text)
        (directory / file).chmod(0o644)


def client_context(directory: Path) -> ssl.SSLContext:
    """Trusts the cluster's CA only; members are reached by address here, not by name."""
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    context.check_hostname = False
    return context
