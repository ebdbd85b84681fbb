"""A real S3-compatible server for tests: SeaweedFS (master + volume + filer + S3 gateway in
one `weed server` process), built by hack/build-binaries.sh, on loopback ports."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.kube import free_port

ACCESS_KEY, SECRET_KEY = "kuberds-test", "kuberds-test-secret-key"


def identities(access_key: str, secret_key: str) -> dict:
    """SeaweedFS's -s3.config: one identity with every right."""
    return {"identities": [{
        "name": "kuberds",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}  # fmt: skip


def self_signed_certificate(workdir: Path, subject_alt_names: list[str], days: int = 7) -> tuple[Path, Path]:
    """A throwaway certificate and key for an S3 gateway (pgBackRest speaks S3 over TLS only);
    names like "IP:127.0.0.1" or "DNS:s3.ns.svc", the first is also the CN."""
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
                    "-subj", f"/CN={subject_alt_names[0].split(':', 1)[1]}",
                    "-addext", "subjectAltName=" + ",".join(subject_alt_names),
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    return cert, key


class SeaweedFS:
    def __init__(self, weed: Path, workdir: Path):
        self.weed, self.workdir = weed, workdir
        self.master_port = free_port(True)
        self.volume_port = free_port(True)
        self.filer_port = free_port(True)
        self.s3_port = free_port(True)
        self.process: subprocess.Popen | None = None
        self.log = workdir / "seaweedfs.log"

    @property
    def endpoint(self) -> str:
        # pgBackRest speaks S3 over TLS only: the gateway serves HTTPS with a throwaway cert.
        return f"https://127.0.0.1:{self.s3_port}"

    def _certificate(self) -> tuple[Path, Path]:
        cert, key = self.workdir / "tls.crt", self.workdir / "tls.key"
        return (cert, key) if cert.exists() else self_signed_certificate(self.workdir, ["IP:127.0.0.1"], days=2)

    def start(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(identities(ACCESS_KEY, SECRET_KEY)))
        cert, key = self._certificate()
        argv = [
            str(self.weed), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={self.master_port}", f"-volume.port={self.volume_port}",
            f"-filer.port={self.filer_port}", "-filer", "-s3", f"-s3.port={self.s3_port}",
            f"-s3.config={config}", f"-s3.cert.file={cert}", f"-s3.key.file={key}",
            "-volume.max=0", "-master.volumeSizeLimitMB=256",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=2, context=ssl._create_unverified_context())
                return
            except urllib.error.HTTPError:
                return  # 403 for an anonymous request: the gateway is up
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS S3 gateway did not come up: {self.log.read_text()[-2000:]}")

    def create_bucket(self, name: str) -> None:
        shell = subprocess.run(
            [str(self.weed), "shell", f"-master=127.0.0.1:{self.master_port}"],
            input=f"s3.bucket.create -name {name}\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if shell.returncode != 0:
            raise RuntimeError(f"bucket {name}: {shell.stdout} {shell.stderr}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, bucket: str, key: str) -> bytes:
        """Reads an object through the filer (unsigned, local only)."""
        url = f"http://127.0.0.1:{self.filer_port}/buckets/{bucket}/{key.lstrip('/')}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def list(self, bucket: str, prefix: str) -> list[str]:
        """Every file under a prefix, through the filer's JSON listing."""
        found, pending = [], [prefix.strip("/")]
        while pending:
            folder = pending.pop()
            request = urllib.request.Request(f"http://127.0.0.1:{self.filer_port}/buckets/{bucket}/{folder}/?limit=10000",
                                             headers={"Accept": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    listing = json.loads(response.read())
            except urllib.error.HTTPError:
                continue
            for entry in listing.get("Entries") or []:
                path = entry["FullPath"].removeprefix(f"/buckets/{bucket}/")
                if entry.get("Mode", 0) & 0x80000000:  # os.ModeDir
                    pending.append(path)
                else:
                    found.append(path)
        return sorted(found)


def weed_binary() -> Path | None:
    built = Path.home() / ".cache/kuberds/bin/weed"
    return built if built.exists() else (Path(w) if (w := shutil.which("weed")) else None)
