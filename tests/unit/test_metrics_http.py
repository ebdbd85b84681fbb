"""Every kuberds pod's metrics endpoint: its collectors and its certificates' expiry, served
over real HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from kuberds.agent.metrics_http import CertificateExpiry, serve_metrics
from tests.support.kube import free_port
from tests.support.tls import issue


class Up:
    def collect(self):
        yield GaugeMetricFamily("kuberds_example_up", "an engine's own gauge", value=1)


def scraped(port: int) -> dict[str, list]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_endpoint_serves_the_pods_collectors_and_its_certificates_expiry(tmp_path: Path, monkeypatch) -> None:
    issue(tmp_path / "tls", ["db-0.db"])
    port = free_port()
    serve_metrics(port, "127.0.0.1", Up(), tls_dir=tmp_path / "tls")
    families = scraped(port)
    assert families["kuberds_example_up"][0].value == 1
    expiry = {s.labels["certificate"]: s.value for s in families["kuberds_tls_certificate_expiry_timestamp_seconds"]}
    served = x509.load_pem_x509_certificate((tmp_path / "tls" / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "tls" / "ca.crt").read_bytes())
    assert expiry == {"server": served.not_valid_after_utc.timestamp(), "ca": ca.not_valid_after_utc.timestamp()}


def test_a_pod_without_tls_serves_no_expiry_and_a_broken_file_is_skipped(tmp_path: Path) -> None:
    assert list(CertificateExpiry(tmp_path).collect()) == []
    (tmp_path / "tls.crt").write_text("not a certificate")
    assert list(CertificateExpiry(tmp_path).collect()) == []


def test_a_bundle_expires_with_its_earliest_certificate(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from kuberds.agent.metrics_http import not_after
    from kuberds.builders import certificates

    now = datetime.now(UTC)
    old, new = certificates.new_ca("old CA", now - timedelta(days=3000)), certificates.new_ca("new CA", now)
    (tmp_path / "ca.crt").write_text(new.certificate + old.certificate)
    earliest = x509.load_pem_x509_certificate(old.certificate.encode()).not_valid_after_utc.timestamp()
    assert not_after(tmp_path / "ca.crt") == earliest


def test_the_postgres_agents_gauges_are_served_with_the_certificates_expiry(tmp_path: Path) -> None:
    from kuberds.agent.report import AgentMetrics

    issue(tmp_path / "tls", ["db-0.db"])
    metrics = AgentMetrics("postgres")
    metrics.up.set(1)
    port = free_port()
    serve_metrics(port, "127.0.0.1", metrics.registry, tls_dir=tmp_path / "tls")
    families = scraped(port)
    assert families["kuberds_postgres_up"][0].value == 1
    assert {s.labels["certificate"] for s in families["kuberds_tls_certificate_expiry_timestamp_seconds"]} == {
        "server", "ca"}  # fmt: skip
