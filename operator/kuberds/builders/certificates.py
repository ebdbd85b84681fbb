"""Certificates for the servers' client TLS: one CA per server, and a server certificate it
signs for the endpoints' DNS names. No I/O: PEM text in, PEM text out.

Why a CA per server and not one self-signed certificate: clients pin the CA (`sslrootcert`,
`verify-full`) once, and the server certificate can be reissued (new names, renewal) without
them noticing. The CA's key stays in its own Secret, which pods never mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=397)  # what public CAs may issue at most; renewed long before
RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(minutes=5)  # clocks of clients a little behind still accept it


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM."""

    certificate: str
    key: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def new_ca(common_name: str, now: datetime) -> KeyPair:
    common_name = common_name[:64]  # X.509's upper bound for a common name
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kuberds"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_pem(certificate), _pem_key(key))


def server_certificate(ca: KeyPair, dns_names: list[str], now: datetime) -> KeyPair:
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    key = _key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0][:64])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_certificate.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_pem(certificate), _pem_key(key))


def reissue_reason(certificate_pem: str | None, ca_pem: str, dns_names: list[str], now: datetime) -> str | None:
    """Why the served certificate must be replaced (None: it is fine)."""
    if not certificate_pem:
        return "no certificate yet"
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
    except ValueError:
        return "the certificate cannot be read"
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by the server's CA"
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the certificate names no endpoint"
    if sorted(names.get_values_for_type(x509.DNSName)) != sorted(dns_names):
        return "the endpoints' names changed"
    expires = certificate.not_valid_after_utc
    # Near the CA's own end a new certificate could not last longer: not worth reissuing.
    if expires - now < RENEW_BEFORE and expires < ca.not_valid_after_utc:
        return f"it expires at {expires:%Y-%m-%dT%H:%M:%SZ}"
    return None
