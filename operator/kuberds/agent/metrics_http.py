"""The metrics endpoint every kuberds pod serves (database, cache and proxy agents alike): the
pod's own collectors, and the expiry of the TLS certificates mounted into it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kuberds.contract import TLS_CA_FILE, TLS_DIR, TLS_FILES

log = logging.getLogger("kuberds.agent")
# The mounted files, by the name the metric's `certificate` label gives them.
CERTIFICATES = {"server": TLS_FILES[0], "ca": TLS_CA_FILE}


class CertificateExpiry(Collector):
    """kuberds_tls_certificate_expiry_timestamp_seconds{certificate="server"|"ca"}: the notAfter of
    each certificate in the pod's TLS directory, read at every scrape (a renewed Secret is
    seen without a restart). Nothing when the pod serves no TLS."""

    def __init__(self, directory: Path = Path(TLS_DIR)):
        self.directory = directory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("kuberds_tls_certificate_expiry_timestamp_seconds",
                                   "When the pod's TLS certificate stops being valid (notAfter)",
                                   labels=["certificate"])  # fmt: skip
        for label, name in CERTIFICATES.items():
            expiry = not_after(self.directory / name)
            if expiry is not None:
                family.add_metric([label], expiry)
        if family.samples:
            yield family


def not_after(path: Path) -> float | None:
    """The earliest notAfter in the PEM file (a CA bundle holds two while a CA is rotated)."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as unreadable:
        log.warning("certificate %s unreadable: %s", path, unreadable)
        return None
    return min(c.not_valid_after_utc.timestamp() for c in certificates)


def serve_metrics(port: int, address: str, *collectors: Collector, tls_dir: Path = Path(TLS_DIR)) -> CollectorRegistry:
    """Serves `collectors` and the expiry of the certificates in `tls_dir` on `port` (0: not at all)."""
    registry = CollectorRegistry()
    for collector in (*collectors, CertificateExpiry(tls_dir)):
        registry.register(collector)
    if port:
        start_http_server(port, addr=address, registry=registry)
    return registry
