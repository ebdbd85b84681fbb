"""The servers' client-TLS certificates: a CA per server and the certificate it signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509

from kuberds.builders.certificates import RENEW_BEFORE, new_ca, reissue_reason, server_certificate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAMES = ["db", "db.ns", "db.ns.svc", "*.db-pods.ns.svc"]


def test_the_served_certificate_names_the_endpoints_and_chains_to_the_servers_ca() -> None:
    ca = new_ca("db.ns kuberds CA", NOW)
    served = server_certificate(ca, NAMES, NOW)
    certificate = x509.load_pem_x509_certificate(served.certificate.encode())
    authority = x509.load_pem_x509_certificate(ca.certificate.encode())
    certificate.verify_directly_issued_by(authority)  # raises if not
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == NAMES
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.not_valid_before_utc < NOW < certificate.not_valid_after_utc
    assert "PRIVATE KEY" in served.key and served.key != ca.key
    assert reissue_reason(served.certificate, ca.certificate, NAMES, NOW) is None


def test_reissued_when_missing_renamed_expiring_or_from_another_ca() -> None:
    ca = new_ca("db.ns kuberds CA", NOW)
    served = server_certificate(ca, NAMES, NOW)
    assert reissue_reason(None, ca.certificate, NAMES, NOW) == "no certificate yet"
    assert reissue_reason(served.certificate, ca.certificate, [*NAMES, "db-ro"], NOW) == "the endpoints' names changed"
    expiry = x509.load_pem_x509_certificate(served.certificate.encode()).not_valid_after_utc
    assert reissue_reason(served.certificate, ca.certificate, NAMES, expiry - RENEW_BEFORE - timedelta(days=1)) is None
    assert reissue_reason(served.certificate, ca.certificate, NAMES, expiry - RENEW_BEFORE + timedelta(days=1)) == (
        f"it expires at {expiry:%Y-%m-%dT%H:%M:%SZ}")  # fmt: skip
    other = new_ca("another CA", NOW)
    assert reissue_reason(served.certificate, other.certificate, NAMES, NOW) == "not issued by the server's CA"
    assert reissue_reason("garbage", ca.certificate, NAMES, NOW) == "the certificate cannot be read"


def test_long_names_fit_and_the_cas_last_days_do_not_churn() -> None:
    ca = new_ca("kuberds CA " + "a" * 63 + "." + "b" * 63, NOW)  # X.509 allows 64 characters
    authority = x509.load_pem_x509_certificate(ca.certificate.encode())
    assert len(authority.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value) == 64
    # Issued in the CA's last days, the certificate ends with the CA: reissuing would not help.
    late = authority.not_valid_after_utc - timedelta(days=10)
    served = server_certificate(ca, NAMES, late)
    assert x509.load_pem_x509_certificate(served.certificate.encode()).not_valid_after_utc == (
        authority.not_valid_after_utc)  # fmt: skip
    assert reissue_reason(served.certificate, ca.certificate, NAMES, late) is None
