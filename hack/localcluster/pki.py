"""The cluster's certificates: one CA, the API server's serving certificate, a client
certificate per identity and the service-account signing key (with the openssl command)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from .layout import IDENTITIES, KUBERNETES_SERVICE_IP, Identity, Layout


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue_certificate(pki: Path, name: str, subject: str, extensions: str) -> None:
    """A P-256 key and a certificate signed by the cluster CA."""
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=pki) as ext:
        ext.write(extensions)
        ext.flush()
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / f"{name}.key"))
        openssl(
            "req", "-new", "-key", str(pki / f"{name}.key"), "-subj", subject,
            "-out", str(pki / f"{name}.csr"),
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
            "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "365",
            "-extfile", ext.name, "-out", str(pki / f"{name}.crt"),
        )  # fmt: skip
    (pki / f"{name}.csr").unlink()


def subject_of(identity: Identity) -> str:
    return "".join(f"/O={group}" for group in identity.groups) + f"/CN={identity.common_name}"


def make_pki(layout: Layout, clients: tuple[Identity, ...] = IDENTITIES) -> None:
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "ca.key"))
    openssl(
        "req", "-x509", "-new", "-key", str(pki / "ca.key"), "-subj", "/CN=kuberds-local-ca",
        "-days", "3650", "-out", str(pki / "ca.crt"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    names = [
        "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "localhost",
    ]  # fmt: skip
    ips = sorted({"127.0.0.1", KUBERNETES_SERVICE_IP, layout.advertise_address})
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ips])
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    issue_certificate(
        pki, "apiserver", "/CN=kube-apiserver",
        leaf + f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n",
    )  # fmt: skip
    for identity in clients:
        issue_certificate(pki, identity.name, subject_of(identity), leaf + "extendedKeyUsage=clientAuth\n")
    # Service-account tokens are signed with a key of their own (RSA: what every
    # token consumer accepts).
    openssl("genrsa", "-out", str(pki / "service-account.key"), "2048")
    openssl("rsa", "-in", str(pki / "service-account.key"), "-pubout", "-out", str(pki / "service-account.pub"))


# ---------------------------------------------------------------- processes
