"""Where a local cluster lives and what it is made of: the address ranges, zones and
node names, the state directory and ports (Layout), the real nodes (RealNode) and the
client identities its certificates carry."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

HACK = Path(__file__).resolve().parent.parent  # hack/, where cluster.py and kwok-stages.yaml are
POD_CIDR = "198.18.0.0/16"
# kwok's pool for a pod whose node has no podCIDR yet: the upper half, away from the /24s the
# controller manager hands out from the bottom of POD_CIDR to every node, real ones included.
KWOK_POD_CIDR = "198.18.128.0/17"
SERVICE_CIDR = "198.19.0.0/16"
KUBERNETES_SERVICE_IP = "198.19.0.1"
CLUSTER_DNS_IP = "198.19.0.10"
CLUSTER_DOMAIN = "cluster.local"
ZONES = ("zone-a", "zone-b", "zone-c")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# A realistic mid-size worker: what the scheduler and topology spread see.
KWOK_NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}

# Real nodes: two, because a Multi-AZ database needs two hostnames in two zones.
REAL_NODES = (("node-a", "zone-a"), ("node-b", "zone-b"))
REAL_NODE_LABEL = "kuberds.io/node-type"
PAUSE_IMAGE = "localhost/kuberds/pause:catatonit"
SMOKE_IMAGE = "docker.io/library/debian:bookworm-slim"
PROVISIONER = "kuberds.io/local-volume"
CNI_BIN_DIR = Path("/usr/lib/cni")
NODE_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "conntrack", "catatonit", "podman")
CGROUP_MOUNTS = Path("/sys/fs/cgroup")
CGROUP_PARENT = "kuberds"  # every pod's cgroup lives under /kuberds/<node> in each hierarchy
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
# Nothing addressed to the cluster's ranges may leave this machine: `up` routes them here
# (realnode.containment_routes), marked with this routing protocol number so that `down`
# removes only its own routes. Service addresses end on a bridge without ports.
ROUTE_PROTOCOL = "77"  # unassigned in iproute2's rt_protos (99 is openr, 186 bgp, …)
SERVICE_SINK = "kuberds-svc"
# Paths outside the state directory that kubelets and containerd create whatever they are
# told (the device-plugin socket, container log links, shim sockets, the CNI result cache):
# `up` notes which are absent and `down` removes those.
HOST_PATHS = tuple(
    Path(p) for p in ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/var/lib/cni")
)


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files and which ports it listens on."""

    root: Path
    apiserver_port: int = 6443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    kwok_port: int = 10247
    # Real nodes only; node-b's kubelet ports are node-a's plus 100.
    kubelet_port: int = 10250
    kubelet_healthz_port: int = 10248
    kube_proxy_healthz_port: int = 10256
    kube_proxy_metrics_port: int = 10249
    coredns_port: int = 10053
    coredns_ready_port: int = 10054
    advertise_address: str = "127.0.0.1"

    pki = property(lambda self: self.root / "pki")
    logs = property(lambda self: self.root / "logs")
    pids = property(lambda self: self.root / "pids")
    etcd_data = property(lambda self: self.root / "etcd")
    kubeconfig = property(lambda self: self.root / "kubeconfig")
    nodes = property(lambda self: self.root / "nodes")
    volumes = property(lambda self: self.root / "volumes")
    server = property(lambda self: f"https://127.0.0.1:{self.apiserver_port}")

    @staticmethod
    def default_ports() -> dict[str, int]:
        return {f.name: f.default for f in fields(Layout) if f.name.endswith("_port")}

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"


@dataclass(frozen=True)
class RealNode:
    """One containerd and one kubelet. Both nodes share this machine, so they differ only in
    names, ports, directories, cgroup root and bridge."""

    name: str
    zone: str
    root: Path
    kubelet_port: int
    kubelet_healthz_port: int

    socket = property(lambda self: self.root / "containerd.sock")
    kubelet_dir = property(lambda self: self.root / "kubelet")
    cni_dir = property(lambda self: self.root / "cni")
    bridge = property(lambda self: f"kuberds-{self.name}")  # at most 15 characters
    cgroup_root = property(lambda self: f"/{CGROUP_PARENT}/{self.name}")

    def sockets(self) -> list[Path]:
        """The node's longest unix socket paths, which must fit in sun_path."""
        return [Path(f"{self.socket}.ttrpc"), self.kubelet_dir / "pod-resources" / "kubelet.sock"]


def real_nodes(layout: Layout) -> list[RealNode]:
    return [
        RealNode(name, zone, layout.nodes / name, layout.kubelet_port + 100 * i, layout.kubelet_healthz_port + 100 * i)
        for i, (name, zone) in enumerate(REAL_NODES)
    ]


@dataclass(frozen=True)
class Identity:
    """A client certificate: Kubernetes reads the user from CN and groups from O."""

    name: str
    common_name: str
    groups: tuple[str, ...] = ()


IDENTITIES = (
    Identity("admin", "kuberds-admin", ("system:masters",)),
    Identity("kube-controller-manager", "system:kube-controller-manager"),
    Identity("kube-scheduler", "system:kube-scheduler"),
    # kwok stands in for the kubelets of its nodes and needs their broad rights.
    Identity("kwok", "kwok-controller", ("system:masters",)),
)
# The Node authorizer and NodeRestriction know a kubelet by this CN and group.
NODE_IDENTITIES = tuple(Identity(f"kubelet-{name}", f"system:node:{name}", ("system:nodes",)) for name, _ in REAL_NODES)
REAL_NODE_IDENTITIES = (
    *NODE_IDENTITIES,
    Identity("kube-proxy", "system:kube-proxy"),  # bound to system:node-proxier by default
    Identity("coredns", "kuberds-coredns"),  # bound by cluster_dns_objects()
)


def identities(with_real_nodes: bool) -> tuple[Identity, ...]:
    return IDENTITIES + (REAL_NODE_IDENTITIES if with_real_nodes else ())


def state_dir() -> Path:
    """Where the cluster keeps its state (hack/images.py finds the nodes' sockets there)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kuberds"
    return Path(os.environ.get("KUBERDS_CLUSTER_DIR", cache / "cluster"))


def default_layout() -> Layout:
    root = state_dir()
    # A second cluster beside the first (hack's own lifecycle test) shifts every port.
    offset = int(os.environ.get("KUBERDS_CLUSTER_PORT_OFFSET", "0"))
    ports = {name: value + offset for name, value in Layout.default_ports().items()}
    return Layout(root=root, advertise_address=advertise_address(), **ports)


def advertise_address() -> str:
    """The address of the default route's interface: kubelets refuse a loopback node IP."""
    try:
        out = subprocess.run(["ip", "-4", "-j", "route", "show", "default"], capture_output=True, text=True)
        dev = json.loads(out.stdout)[0]["dev"]
        out = subprocess.run(["ip", "-4", "-j", "addr", "show", "dev", dev], capture_output=True, text=True)
        return json.loads(out.stdout)[0]["addr_info"][0]["local"]
    except (OSError, ValueError, IndexError, KeyError):
        return "127.0.0.1"
