"""The pure parts of the local cluster (hack/localcluster/): flags, manifests, certificates, pid bookkeeping."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hack.localcluster import lifecycle
from hack.localcluster.controlplane import (
    apiserver_command,
    controller_manager_command,
    kubeconfig,
    kwok_node,
    kwok_stages,
)
from hack.localcluster.host import detach_loops_under, mounts_under
from hack.localcluster.layout import (
    HACK,
    PAUSE_IMAGE,
    POD_CIDR,
    ROUTE_PROTOCOL,
    SERVICE_CIDR,
    SERVICE_SINK,
    ZONES,
    Layout,
    default_layout,
    real_nodes,
)
from hack.localcluster.pki import make_pki
from hack.localcluster.processes import pid_file, process_start_time, recorded_pid
from hack.localcluster.provisioner import LoopVolume, local_volume, quantity
from hack.localcluster.realnode import (
    cni_config_template,
    containerd_config,
    containment_routes,
    iptables_cleanup,
    kubelet_config,
    pod_masquerade_rules,
    toml,
)


@pytest.fixture
def layout(tmp_path: Path):
    return Layout(root=tmp_path, advertise_address="192.0.2.2")


def flag(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times in {command}"
    return values[0]


def test_apiserver_flags_cover_what_a_real_cluster_needs(layout) -> None:
    command = apiserver_command(Path("/bin"), layout)
    assert flag(command, "authorization-mode") == "Node,RBAC"
    assert flag(command, "advertise-address") == "192.0.2.2"
    assert flag(command, "service-cluster-ip-range") == "198.19.0.0/16"
    for name in ("service-account-issuer", "service-account-key-file", "service-account-signing-key-file"):
        assert flag(command, name)
    assert flag(command, "etcd-servers") == f"http://127.0.0.1:{layout.etcd_port}"


def test_controller_manager_allocates_pod_ranges_from_the_reserved_block(layout) -> None:
    command = controller_manager_command(Path("/bin"), layout)
    assert flag(command, "cluster-cidr") == "198.18.0.0/16"
    assert flag(command, "leader-elect") == "false"
    assert "--use-service-account-credentials" in command


def test_port_offset_moves_every_port(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KUBERDS_CLUSTER_DIR", str(tmp_path))
    monkeypatch.setenv("KUBERDS_CLUSTER_PORT_OFFSET", "100")
    layout = default_layout()
    assert layout.apiserver_port == 6543
    assert layout.etcd_port == 12479
    assert layout.kwok_port == 10347
    assert layout.root == tmp_path


def test_kwok_nodes_are_zoned_fake_and_sized() -> None:
    nodes = [kwok_node(zone, i) for i, zone in enumerate(ZONES)]
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == [
        "zone-a", "zone-b", "zone-c",
    ]  # fmt: skip
    assert all(n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in nodes)
    assert nodes[0]["status"]["capacity"]["cpu"] == "16"
    ips = {n["status"]["addresses"][0]["address"] for n in nodes}
    assert len(ips) == 3 and all(ip.startswith("198.18.") for ip in ips)


def test_certificates_carry_identity_and_addresses(layout) -> None:
    make_pki(layout)

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

    config = kubeconfig(layout, "admin")
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["users"][0]["user"]["client-key-data"]


def test_a_recycled_pid_is_not_taken_for_ours(layout) -> None:
    layout.pids.mkdir()
    own = pid_file(layout, "etcd")
    own.write_text(f"{os.getpid()} {process_start_time(os.getpid())}\n")
    assert recorded_pid(layout, "etcd") == os.getpid()
    own.write_text(f"{os.getpid()} 1\n")  # same pid, another process's start time
    assert recorded_pid(layout, "etcd") is None
    assert recorded_pid(layout, "kwok") is None  # never started


# ---------------------------------------------------------------- real nodes


def test_two_real_nodes_share_no_path_port_bridge_or_cgroup(layout) -> None:
    a, b = real_nodes(layout)
    assert (a.zone, b.zone) == ("zone-a", "zone-b")
    for attribute in ("root", "socket", "kubelet_dir", "bridge", "cgroup_root", "kubelet_port", "kubelet_healthz_port"):
        assert getattr(a, attribute) != getattr(b, attribute), attribute
    assert all(len(node.bridge) <= 15 for node in (a, b)), "Linux interface names are at most 15 characters"
    assert a.socket == layout.root / "nodes" / "node-a" / "containerd.sock"  # what hack/images.py loads into


def test_containerd_config_keeps_everything_in_the_nodes_directory(layout) -> None:
    node = real_nodes(layout)[0]
    config = containerd_config(node)
    assert config["grpc"]["address"] == str(node.socket)
    for key in ("root", "state"):
        assert config[key].startswith(str(node.root))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert cri["cni"]["conf_template"].startswith(str(node.root))
    text = toml(config)
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]' in text
    assert "SystemdCgroup = false" in text and f'address = "{node.socket}"' in text


def test_cni_bridge_takes_the_nodes_pod_range_and_masquerades_nothing_itself(layout) -> None:
    node = real_nodes(layout)[1]
    bridge = cni_config_template(node)["plugins"][0]
    assert bridge["bridge"] == node.bridge and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "{{.PodCIDR}}"}]]
    assert "-s 198.18.0.0/16 ! -d 198.18.0.0/16 -j MASQUERADE" in pod_masquerade_rules()


def test_kubelets_run_on_cgroup_v1_with_their_own_root_and_the_cluster_dns(layout) -> None:
    node = real_nodes(layout)[0]
    config = kubelet_config(node, layout)
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == node.cgroup_root
    assert config["containerRuntimeEndpoint"] == f"unix://{node.socket}"
    assert config["clusterDNS"] == ["198.19.0.10"] and config["authentication"]["anonymous"]["enabled"] is False


def test_iptables_cleanup_removes_only_cluster_chains_and_the_jumps_to_them() -> None:
    saved = "\n".join([
        "*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]",
        ":KUBERDS-POSTROUTING - [0:0]", ":PODMAN-KEEP - [0:0]",
        "-A PREROUTING -m comment --comment kube -j KUBE-SERVICES",
        "-A POSTROUTING -j KUBERDS-POSTROUTING", "-A POSTROUTING -j PODMAN-KEEP",
        "-A KUBE-SERVICES -j RETURN", "COMMIT",
        "*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -j ACCEPT", "COMMIT",
    ])  # fmt: skip
    script = iptables_cleanup(saved)
    assert "-X KUBE-SERVICES" in script and "-X KUBERDS-POSTROUTING" in script
    assert "-D PREROUTING -m comment --comment kube -j KUBE-SERVICES" in script
    assert "PODMAN-KEEP" not in script and "*filter" not in script
    assert iptables_cleanup("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT") == ""


def test_a_claim_gets_a_prebound_local_volume_the_kubelet_gives_to_fsgroup(tmp_path: Path) -> None:
    claim = {"metadata": {"name": "data-db-0", "namespace": "team", "uid": "1234"},
             "spec": {"resources": {"requests": {"storage": "5Gi"}}, "accessModes": ["ReadWriteOnce"]}}  # fmt: skip
    storage_class = {"metadata": {"name": "standard"}, "reclaimPolicy": "Retain"}
    volume = local_volume(claim, storage_class, tmp_path / "pvc-1234")
    spec = volume["spec"]
    assert volume["metadata"]["name"] == "pvc-1234"
    assert spec["claimRef"]["uid"] == "1234" and spec["claimRef"]["name"] == "data-db-0"
    assert spec["local"] == {"path": str(tmp_path / "pvc-1234")}  # local, not hostPath: fsGroup applies
    assert spec["persistentVolumeReclaimPolicy"] == "Retain" and spec["capacity"] == {"storage": "5Gi"}
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kuberds.io/node-type", "operator": "In", "values": ["real"]}


def test_beside_real_nodes_kwok_provisions_no_volumes() -> None:
    text = (HACK / "kwok-stages.yaml").read_text()
    assert "name: kuberds-volume-" in text
    assert kwok_stages(text, with_real_nodes=False) == text
    assert "name: kuberds-volume-" not in kwok_stages(text, with_real_nodes=True)


def test_provisioner_quantities() -> None:
    assert quantity("10Gi") == 10 * 2**30 and quantity("1.5G") == 1_500_000_000 and quantity("1e9") == 10**9
    for bad in ("Gi", "10Xi", "ten"):
        with pytest.raises(ValueError, match="not a quantity"):
            quantity(bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and mounts need root")
def test_a_volume_has_exactly_its_size_grows_online_and_leaves_nothing_behind(tmp_path: Path) -> None:
    volumes = tmp_path / "volumes"
    volumes.mkdir()
    loop = LoopVolume(volumes / "pvc-1")
    try:
        loop.create(320 * 2**20)  # mkfs.xfs makes nothing smaller than 300 MiB
        loop.create(320 * 2**20)  # a second pass finds it done
        assert mounts_under(volumes) == [str((volumes / "pvc-1").resolve())]
        # XFS's log (counted out of the size statvfs gives) and tables take a little; nothing
        # is reserved for root.
        stat = os.statvfs(volumes / "pvc-1")
        assert 240 * 2**20 < stat.f_blocks * stat.f_frsize <= 320 * 2**20 and stat.f_bavail == stat.f_bfree
        data = os.urandom(2**20)
        (volumes / "pvc-1" / "kept").write_bytes(data)
        with (volumes / "pvc-1" / "filler").open("wb") as filler, pytest.raises(OSError, match="No space left"):
            while True:
                filler.write(os.urandom(2**20))
                filler.flush()
                os.fsync(filler.fileno())
        with open(volumes / "pvc-1" / "still-mounted", "w") as held:  # grown while in use, as by a pod
            assert loop.grow(640 * 2**20)
            held.write("x")
        stat = os.statvfs(volumes / "pvc-1")
        assert stat.f_blocks * stat.f_frsize > 560 * 2**20 and stat.f_bavail * stat.f_frsize > 300 * 2**20
        assert (volumes / "pvc-1" / "kept").read_bytes() == data
    finally:
        loop.remove()
    assert mounts_under(volumes) == [] and list(volumes.iterdir()) == []
    assert detach_loops_under(tmp_path) == []
    listed = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True,
                            text=True)  # fmt: skip
    assert str(volumes) not in listed.stdout


# ---------------------------------------------------------------- the cluster's ranges stay here


def test_the_cluster_ranges_stay_on_this_machine_below_the_nodes_own_routes(layout) -> None:
    routes = containment_routes()
    assert routes[POD_CIDR][:2] == ["unreachable", "198.18.0.0/16"]  # refused locally, at once
    # Services are routed before kube-proxy's DNAT: a device, not `unreachable`, keeps them usable from the host.
    assert routes[SERVICE_CIDR][:3] == ["198.19.0.0/16", "dev", SERVICE_SINK]
    assert all(route[-2:] == ["proto", ROUTE_PROTOCOL] for route in routes.values()), "down removes only ours"
    assert int(ROUTE_PROTOCOL) > 4, "0-4 are the kernel's own (unspec, redirect, kernel, boot, static)"
    # Each node's podCIDR is more specific than the pod range, so its bridge route wins.
    node_prefix = int(flag(controller_manager_command(Path("/bin"), layout), "node-cidr-mask-size"))
    assert node_prefix > int(POD_CIDR.split("/")[1])
    assert len(SERVICE_SINK) <= 15 and SERVICE_SINK not in {node.bridge for node in real_nodes(layout)}


@pytest.mark.parametrize(
    ("stop_errors", "another_cluster", "released"),
    [([], False, True), (["deleting bridge kuberds-node-a: busy"], False, False), ([], True, False)],
)
def test_down_releases_the_ranges_last_and_only_when_nothing_needs_them(
    monkeypatch, layout, stop_errors, another_cluster, released
) -> None:
    calls: list[str] = []

    def stop_all(_layout, errors):
        calls.append("stop")
        errors.extend(stop_errors)
        return []

    monkeypatch.setattr(lifecycle, "stop_all", stop_all)
    monkeypatch.setattr(lifecycle, "remove_state", lambda _layout: calls.append("remove state"))
    monkeypatch.setattr(lifecycle, "release_cluster_ranges", lambda: calls.append("release routes"))
    monkeypatch.setattr(lifecycle, "other_cluster_running", lambda: another_cluster)
    monkeypatch.setattr(lifecycle.os, "geteuid", lambda: 0)
    result = lifecycle.down(layout)
    if stop_errors:  # bridges may be gone while pods' processes live: their ranges stay contained
        assert result == 1 and calls == ["stop"]
    else:
        assert result == 0 and calls == ["stop", "remove state", *(["release routes"] if released else [])]
