"""Talking to the local API server as its admin: kubectl for the cluster script, and a tiny
HTTPS client (standard library only) for the volume provisioner."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .layout import Layout


def admin_ssl_context(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def kubectl(bin_dir: Path, layout: Layout, *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def apply(bin_dir: Path, layout: Layout, items: list[dict]) -> None:
    kubectl(bin_dir, layout, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


class Api:
    """The few API calls the provisioner makes, with the admin certificate."""

    def __init__(self, layout: Layout):
        self.server = layout.server
        self.context = admin_ssl_context(layout)

    def call(self, method: str, path: str, body: dict | None = None, patch: bool = False) -> dict:
        content_type = "application/merge-patch+json" if patch else "application/json"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            return json.load(response)

    def items(self, path: str) -> list[dict]:
        return self.call("GET", path)["items"]
