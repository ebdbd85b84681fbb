"""What tests need to talk to a cluster: which one, kubectl, waiting, namespaces.

Shared by tests/ (the control-plane tier) and e2e/ (the whole-cluster tier).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import kubernetes
import yaml

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    kubectl_path: str
    local: bool  # the hack/ cluster, rather than one the user pointed us at

    def client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl_process(self, *args: str, input: str = "") -> subprocess.Popen:
        """kubectl running on in the background, `input` given whole on its stdin (a script
        fed to a python in a pod); communicate() waits for it."""
        pipe = subprocess.PIPE
        process = subprocess.Popen([self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args], stdin=pipe,
                                   stdout=pipe, stderr=pipe, text=True)  # fmt: skip
        process.stdin.write(input)
        process.stdin.close()
        process.stdin = None  # given whole: communicate() must not flush it again
        return process

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:  # fmt: skip
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            # A connection string in the command (psql in the client pod) carries a password.
            command = re.sub(r"password=\S+", "password=(hidden)", " ".join(args))
            raise AssertionError(f"kubectl {command} failed ({result.returncode}): {result.stderr}")
        return result


def local_kubectl() -> str:
    """The kubectl built with the local cluster, at the same pinned version."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-binaries.sh"), "--print-bin-dir"],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(Path(out.stdout.strip()) / "kubectl")


def external_kubectl() -> str:
    found = shutil.which(os.environ.get("KUBECTL", "kubectl"))
    if not found:
        raise RuntimeError("a kubeconfig was given but no kubectl is on PATH (or set KUBECTL)")
    return found


OPERATOR_SELECTOR = "app.kubernetes.io/name=kuberds,app.kubernetes.io/component=operator"  # the chart's labels


def installed_operators(cluster: Cluster) -> list[str]:
    """Deployments of the kuberds operator in the cluster (a Helm release, as `make up` makes):
    whatever runs an operator of its own beside one of these would fight it over every object."""
    listed = cluster.kubectl("get", "deployments", "-A", "-l", OPERATOR_SELECTOR, "-o", "json").stdout
    return [f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in json.loads(listed)["items"]
            if d["spec"].get("replicas", 1)]  # fmt: skip


def wait_for(probe: Callable[[], T], timeout: float = 60.0, interval: float = 0.25, what: str = "condition") -> T:
    """Polls `probe` until it returns something truthy; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


def token_kubeconfig(cluster: Cluster, account: str, namespace: str, path: Path, context: str) -> Path:
    """A kubeconfig that authenticates as one ServiceAccount (a 4-hour token) and nothing else,
    so whatever runs with it proves that account's RBAC is enough."""
    core = kubernetes.client.CoreV1Api(cluster.client())
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 4 * 3600}}
    ).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == current["cluster"])
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context, "clusters": [server],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": server["name"], "user": context}}],
    }))  # fmt: skip
    path.chmod(0o600)
    return path


def free_port(avoid_grpc_clash: bool = False) -> int:
    """A free loopback port, below the kernel's ephemeral range: a port the kernel handed out
    once is free again at once, and the next outgoing connection of any process here may take
    it before the server it was picked for binds it (a Patroni that could not listen, seen in
    CI). SeaweedFS also listens on port+10000 for gRPC: those are picked from a range of their
    own, so both stay below 30000 (the NodePorts start there)."""
    low, high = (12000, 19999) if avoid_grpc_clash else (20000, 29999)
    while True:
        port = random.randint(low, high)
        if _bindable(port) and (not avoid_grpc_clash or _bindable(port + 10000)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
