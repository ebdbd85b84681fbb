"""The pure parts of hack/cluster.py: flags, manifests, certificates, pid bookkeeping."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.kube import load_localcluster

lc = load_localcluster()


@pytest.fixture
def layout(tmp_path: Path):
    return lc.Layout(root=tmp_path, advertise_address="192.0.2.2")


def flag(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {command}"
    return values[0]


def test_apiserver_flags_cover_what_a_real_cluster_needs(layout) -> None:
    command = lc.apiserver_command(Path("/bin"), layout)
    assert flag(command, "authorization-mode") == "Node,RBAC"
    assert flag(command, "advertise-address") == "192.0.2.2"
    assert flag(command, "service-cluster-ip-range") == "198.19.0.0/16"
    for name in ("service-account-issuer", "service-account-key-file", "service-account-signing-key-file"):
        assert flag(command, name)
    assert flag(command, "etcd-servers") == f"http://127.0.0.1:{layout.etcd_port}"


def test_controller_manager_allocates_pod_ranges_from_the_reserved_block(layout) -> None:
    command = lc.controller_manager_command(Path("/bin"), layout)
    assert flag(command, "cluster-cidr") == "198.18.0.0/16"
    assert flag(command, "leader-elect") == "false"
    assert "--use-service-account-credentials" in command


def test_port_offset_moves_every_port(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KUBERDS_CLUSTER_DIR", str(tmp_path))
    monkeypatch.setenv("KUBERDS_CLUSTER_PORT_OFFSET", "100")
    layout = lc.default_layout()
    assert layout.apiserver_port == 6543
    assert layout.etcd_port == 12479
    assert layout.kwok_port == 10347
    assert layout.root == tmp_path


def test_kwok_nodes_are_zoned_fake_and_sized() -> None:
    nodes = [lc.kwok_node(zone, i) for i, zone in enumerate(lc.ZONES)]
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == [
        "zone-a", "zone-b", "zone-c",
    ]  # fmt: skip
    assert all(n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in nodes)
    assert nodes[0]["status"]["capacity"]["cpu"] == "16"
    ips = {n["status"]["addresses"][0]["address"] for n in nodes}
    assert len(ips) == 3 and all(ip.startswith("198.18.") for ip in ips)


def test_certificates_carry_identity_and_addresses(layout) -> None:
    lc.make_pki(layout)

    def text(name: str) -> str:
        return subprocess.run(
            ["openssl", "x509", "-noout", "-text", "-in", str(layout.pki / f"{name}.crt")],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    admin = text("admin")
    assert "O = system:masters, CN = kuberds-admin" in admin
    assert "TLS Web Client Authentication" in admin
    apiserver = text("apiserver")
    for address in ("IP Address:127.0.0.1", "IP Address:192.0.2.2", "IP Address:198.19.0.1",
                    "DNS:kubernetes.default.svc.cluster.local"):  # fmt: skip
        assert address in apiserver
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(layout.pki / "ca.crt"), str(layout.pki / "apiserver.crt")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert oct(layout.pki.stat().st_mode & 0o777) == "0o700"

    config = lc.kubeconfig(layout, "admin")
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["users"][0]["user"]["client-key-data"]


def test_a_recycled_pid_is_not_taken_for_ours(layout) -> None:
    layout.pids.mkdir()
    own = lc.pid_file(layout, "etcd")
    own.write_text(f"{os.getpid()} {lc.process_start_time(os.getpid())}\n")
    assert lc.recorded_pid(layout, "etcd") == os.getpid()
    own.write_text(f"{os.getpid()} 1\n")  # same pid, another process's start time
    assert lc.recorded_pid(layout, "etcd") is None
    assert lc.recorded_pid(layout, "kwok") is None  # never started
