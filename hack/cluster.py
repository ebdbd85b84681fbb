#!/usr/bin/env python3
"""A real local Kubernetes for kuberds' tests and demos.

    python3 hack/cluster.py up               # build (cached) and start, wait until healthy
    python3 hack/cluster.py up --real-nodes  # the same plus two real nodes (root; KUBERDS_REAL_NODES=1)
    python3 hack/cluster.py status           # what runs, where the logs and kubeconfig are
    python3 hack/cluster.py down             # stop what `up` started, remove the state

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as local
processes from the binaries hack/build-binaries.sh builds, and registers three kwok nodes,
one per zone (zone-a/b/c). Everything lives in one state directory
(KUBERDS_CLUSTER_DIR, default ~/.cache/kuberds/cluster); the admin kubeconfig is
<state>/kubeconfig. Only the standard library and the openssl command are used, so it runs
with the system python3 before any virtualenv exists.

With --real-nodes two nodes that really run containers join: node-a (zone-a) and node-b
(zone-b), each its own containerd (socket <state>/nodes/NODE/containerd.sock) and kubelet on
this machine, with bridge CNI on the node's podCIDR. One kube-proxy (iptables) serves
Services, CoreDNS answers at 198.19.0.10, and `cluster.py provisioner` backs the StorageClasses
with directories under <state>/volumes. The kwok nodes stay, tainted so that only pods that
tolerate them land there. There is no registry: import images with `ctr -n k8s.io images
import` under their full name (docker.io/kuberds/operator:0.1.0 is what `kuberds/operator:0.1.0`
normalises to) and reference them with a tag other than `latest`. `down` removes every
container, mount, interface and iptables chain the nodes made.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import decimal
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

HACK = Path(__file__).resolve().parent
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


# ---------------------------------------------------------------- pure builders


def kubeconfig(layout: Layout, identity: str) -> dict:
    """A kubeconfig for one identity, with certificates embedded so it can be copied."""

    def b64(name: str) -> str:
        return base64.b64encode((layout.pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kuberds-local",
                "cluster": {"server": layout.server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": identity,
                "user": {
                    "client-certificate-data": b64(f"{identity}.crt"),
                    "client-key-data": b64(f"{identity}.key"),
                },
            }
        ],
        "contexts": [{"name": "kuberds-local", "context": {"cluster": "kuberds-local", "user": identity}}],
        "current-context": "kuberds-local",
    }


def kwok_node(zone: str, index: int, tainted: bool = False) -> dict:
    """A fake node; `tainted` (beside real nodes) keeps ordinary pods off it."""
    name = f"kwok-{zone}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": "local",
        "topology.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": "kwok.16x64",
        "type": "kwok",
    }
    taints = [{"key": KWOK_NODE_ANNOTATION, "value": "fake", "effect": "NoSchedule"}] if tainted else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {KWOK_NODE_ANNOTATION: "fake"}},
        "spec": {"taints": taints},
        "status": {
            "capacity": KWOK_NODE_CAPACITY,
            "allocatable": KWOK_NODE_CAPACITY,
            "addresses": [
                # Nodes sit in the pod range's last /24s, away from any real network.
                {"type": "InternalIP", "address": f"198.18.255.{index + 1}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def etcd_command(bin_dir: Path, layout: Layout) -> list[str]:
    client = f"http://127.0.0.1:{layout.etcd_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    return [
        str(bin_dir / "etcd"),
        "--name=kuberds-local",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kuberds-local={peer}",
        "--listen-metrics-urls=",
        # A throw-away test cluster: durability across a host crash is not wanted,
        # and fsync on every write makes the 500-object benchmark measure the disk.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def apiserver_command(bin_dir: Path, layout: Layout) -> list[str]:
    pki = layout.pki
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{layout.etcd_port}",
        f"--secure-port={layout.apiserver_port}",
        f"--advertise-address={layout.advertise_address}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'admin.crt'}",
        f"--kubelet-client-key={pki / 'admin.key'}",
        # Node names (node-a) resolve nowhere; logs, exec and port-forward go to the node IP.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'service-account.pub'}",
        f"--service-account-signing-key-file={pki / 'service-account.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def _serving_flags(layout: Layout, component: str, port: int) -> list[str]:
    """A control-plane component's own identity, and its health endpoint on loopback."""
    kc = layout.component_kubeconfig(component)
    return [
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
    ]


def controller_manager_command(bin_dir: Path, layout: Layout) -> list[str]:
    pki = layout.pki
    component = "kube-controller-manager"
    return [
        str(bin_dir / component),
        f"--kubeconfig={layout.component_kubeconfig(component)}",
        *_serving_flags(layout, component, layout.controller_manager_port),
        f"--service-account-private-key-file={pki / 'service-account.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials",
        "--leader-elect=false",
        "--allocate-node-cidrs",
        f"--cluster-cidr={POD_CIDR}",
        "--node-cidr-mask-size=24",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--v=1",
    ]


def scheduler_config(layout: Layout) -> dict:
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(layout.component_kubeconfig("kube-scheduler"))},
        "leaderElection": {"leaderElect": False},
    }


def scheduler_command(bin_dir: Path, layout: Layout) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        f"--config={layout.root / 'kube-scheduler.yaml'}",
        *_serving_flags(layout, "kube-scheduler", layout.scheduler_port),
        "--v=1",
    ]


def kwok_command(bin_dir: Path, layout: Layout, stages: Path = HACK / "kwok-stages.yaml") -> list[str]:
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={stages}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={KWOK_POD_CIDR}",
        f"--server-address=127.0.0.1:{layout.kwok_port}",
    ]


def kwok_stages(text: str, with_real_nodes: bool) -> str:
    """kwok's stages; beside real nodes without the volume stages, since the provisioner
    then makes the claims' volumes for real (kwok matches claims by class name)."""
    if not with_real_nodes:
        return text
    documents = text.split("\n---\n")
    return "\n---\n".join(d for d in documents if "name: kuberds-volume-" not in d)


# ---------------------------------------------------------------- real-node builders


def toml(table: dict, path: tuple[str, ...] = ()) -> str:
    """Enough TOML for containerd: strings, booleans, integers, lists of those, tables."""

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        return json.dumps(v)  # a JSON string or integer is a TOML one

    scalars = [f"{key(k)} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    header = ["", "[" + ".".join(key(k) for k in path) + "]"] if path and scalars else []
    tables = [toml(v, (*path, k)) for k, v in table.items() if isinstance(v, dict)]
    return "".join(line + "\n" for line in header + scalars) + "".join(tables)


def containerd_config(node: RealNode) -> dict:
    """containerd with every path in the node's directory, so two of them share a machine."""
    cri = {
        "sandbox_image": PAUSE_IMAGE,  # imported before the kubelet starts; never pulled
        "netns_mounts_under_state_dir": True,  # not /run/netns: `down` finds them by path
        "stream_server_address": "127.0.0.1",
        # Without CAP_SYS_RESOURCE (this VM drops it) runc cannot lower an oom_score_adj, as
        # the kubelet asks for sandboxes and Guaranteed pods: keep them at containerd's own.
        "restrict_oom_score_adj": True,
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": {"SystemdCgroup": False, "Root": str(node.root / "runc")},
                }
            },
        },
        # The CRI plugin renders the template once the kubelet learns the node's podCIDR.
        "cni": {
            "bin_dir": str(CNI_BIN_DIR),
            "conf_dir": str(node.cni_dir / "net.d"),
            "conf_template": str(node.cni_dir / "template.conflist"),
            "max_conf_num": 1,
        },
    }
    return {
        "version": 2,
        "root": str(node.root / "containerd"),
        "state": str(node.root / "containerd-state"),
        "disabled_plugins": [f"io.containerd.snapshotter.v1.{name}" for name in ("aufs", "btrfs", "devmapper", "zfs")],
        "grpc": {"address": str(node.socket)},
        "plugins": {
            "io.containerd.grpc.v1.cri": cri,
            "io.containerd.internal.v1.opt": {"path": str(node.root / "opt")},
        },
    }


def cni_config_template(node: RealNode) -> dict:
    """A bridge per node on its podCIDR. The host routes between the two bridges, so pods
    reach each other unmasqueraded; traffic leaving the pod range is masqueraded by one
    host rule (pod_masquerade_rules), not the bridge plugin's ipMasq, which would also
    masquerade pod-to-pod traffic between the nodes."""
    return {
        "cniVersion": "1.0.0",
        "name": node.bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaches itself through its own Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.cni_dir / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: RealNode, layout: Layout) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.advertise_address,
        "port": node.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": node.kubelet_healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "cgroupDriver": "cgroupfs",  # containerd's runc default
        "cgroupRoot": node.cgroup_root,  # two kubelets must not share /kubepods
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # Images are imported, never pulled: keep them all, and evict only a truly full machine.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        # Defaults outside the node's directory that two kubelets would share.
        "podLogsDir": str(node.root / "pod-logs"),
        "volumePluginDir": str(node.root / "volume-plugins"),
        "serializeImagePulls": False,
    }


def kubelet_command(bin_dir: Path, node: RealNode, layout: Layout) -> list[str]:
    labels = {
        "topology.kubernetes.io/region": "local",
        "topology.kubernetes.io/zone": node.zone,
        REAL_NODE_LABEL: "real",
    }
    return [
        str(bin_dir / "kubelet"),
        f"--config={node.root / 'kubelet.yaml'}",
        f"--kubeconfig={layout.component_kubeconfig(f'kubelet-{node.name}')}",
        f"--root-dir={node.kubelet_dir}",
        f"--cert-dir={node.kubelet_dir / 'pki'}",  # its default is not under --root-dir
        f"--hostname-override={node.name}",
        f"--node-ip={layout.advertise_address}",
        "--node-labels=" + ",".join(f"{k}={v}" for k, v in labels.items()),
        "--v=1",
    ]


def kube_proxy_config(layout: Layout) -> dict:
    """One kube-proxy for the machine: its iptables rules serve both nodes and the host."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.component_kubeconfig("kube-proxy"))},
        "hostnameOverride": REAL_NODES[0][0],
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{layout.kube_proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{layout.kube_proxy_metrics_port}",
        # Leave the host's conntrack limits and route_localnet as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False},
        "nodePortAddresses": ["primary"],  # NodePorts on the node IP only
    }


def kube_proxy_command(bin_dir: Path, layout: Layout) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={layout.root / 'kube-proxy.yaml'}", "--v=1"]


def corefile(layout: Layout) -> str:
    """CoreDNS on the host address, behind the kube-dns Service (cluster_dns_objects)."""
    return f"""\
.:{layout.coredns_port} {{
    bind {layout.advertise_address}
    errors
    ready 127.0.0.1:{layout.coredns_ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {layout.component_kubeconfig("coredns")} kuberds-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}}
"""


def coredns_command(bin_dir: Path, layout: Layout) -> list[str]:
    return [str(bin_dir / "coredns"), "-conf", str(layout.root / "Corefile")]


def provisioner_command() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "provisioner"]


def cluster_dns_objects(layout: Layout) -> list[dict]:
    """The conventional kube-dns Service; its one endpoint is CoreDNS on the host."""
    name, ns = "kube-dns", "kube-system"
    rules = [
        {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "kuberds:coredns"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "kuberds:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kuberds:coredns"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kuberds-coredns"}]},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": name}},
         "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": [
             {"name": n, "port": 53, "protocol": p, "targetPort": layout.coredns_port} for n, p in ports]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-host", "namespace": ns, "labels": {
             "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "cluster.py.kuberds.io"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [layout.advertise_address], "conditions": {"ready": True}}],
         "ports": [{"name": n, "port": layout.coredns_port, "protocol": p} for n, p in ports]},
    ]  # fmt: skip


def storage_classes(with_real_nodes: bool = False) -> list[dict]:
    """`standard` is the default and expandable, `fixed` is not. kwok provisions (and, for
    `standard`, expands) them instantly (see kwok-stages.yaml); beside real nodes the
    provisioner (run_provisioner) makes real volumes instead."""

    def storage_class(name: str, expandable: bool, default: bool) -> dict:
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations},
            "provisioner": PROVISIONER if with_real_nodes else "kwok.x-k8s.io/volume",
            "reclaimPolicy": "Delete" if with_real_nodes else "Retain",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": expandable,
        }

    return [storage_class("standard", True, True), storage_class("fixed", False, False)]


def smoke_pod() -> dict:
    """A pod that proves cluster DNS and the kubernetes Service from inside a container."""
    name = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    script = (
        "for attempt in $(seq 60); do"
        f"  if found=$(getent hosts {name}) && (exec 3<>/dev/tcp/{KUBERNETES_SERVICE_IP}/443) 2>/dev/null;"
        '  then echo "resolved: $found"; echo connected; exit 0; fi; sleep 0.5; '
        "done; cat /etc/resolv.conf; exit 1"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kuberds-smoke", "namespace": "default"},
        "spec": {
            "nodeSelector": {REAL_NODE_LABEL: "real"},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {"name": "smoke", "image": SMOKE_IMAGE, "imagePullPolicy": "Never", "command": ["bash", "-c", script]}
            ],
        },
    }


def pod_masquerade_rules() -> str:
    """iptables-restore input: traffic from pods to anywhere outside the pod range leaves
    with the host's address (traffic to the host itself is not routed, so not rewritten)."""
    return (
        "*nat\n:KUBERDS-POSTROUTING - [0:0]\n"
        '-A POSTROUTING -m comment --comment "kuberds: pods to the outside" -j KUBERDS-POSTROUTING\n'
        f"-A KUBERDS-POSTROUTING -s {POD_CIDR} ! -d {POD_CIDR} -j MASQUERADE\n"
        "COMMIT\n"
    )


OWN_CHAIN = re.compile(r"(KUBE|CNI|KUBERDS)-[\w-]+")


def iptables_cleanup(saved: str) -> str:
    """iptables-restore --noflush input that removes what a cluster leaves in iptables-save's
    output: the chains of kube-proxy and the kubelets (KUBE-*), of the CNI plugins (CNI-*),
    ours (KUBERDS-*), and the rules in other chains that jump to them. One machine runs one
    such cluster, and podman here uses netavark, not CNI, so these names are all ours."""
    script: list[str] = []
    table, chains, jumps = "", [], []
    for line in saved.splitlines():
        if line.startswith("*"):
            table, chains, jumps = line[1:], [], []
        elif line.startswith(":") and OWN_CHAIN.fullmatch(line[1:].split()[0]):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A ") and not OWN_CHAIN.fullmatch(line.split()[1]):
            if re.search(r" -[jg] " + OWN_CHAIN.pattern + r"(\s|$)", line):
                jumps.append(line[3:])
        elif line == "COMMIT" and (chains or jumps):
            script += [f"*{table}", *(f"-F {c}" for c in chains), *(f"-D {j}" for j in jumps)]
            script += [*(f"-X {c}" for c in chains), "COMMIT"]
    return "\n".join(script) + "\n" if script else ""


def rootfs_layer(files: dict[str, tuple[bytes, int]], directories: list[str]) -> bytes:
    """A reproducible layer tarball (owner root, time 0), so the image digest is stable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def docker_archive(reference: str, layer: bytes, image_config: dict) -> bytes:
    """A one-layer image in `docker save` form, which `ctr images import` names by its tag."""
    config = {
        **image_config,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    config_json = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_json).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]).encode()
    return rootfs_layer({"layer.tar": (layer, 0o644), config_name: (config_json, 0o644),
                         "manifest.json": (manifest, 0o644)}, [])  # fmt: skip


def pause_image(catatonit: bytes) -> bytes:
    """The pod sandbox image: Debian's static catatonit in pause mode, as nobody."""
    layer = rootfs_layer({"catatonit": (catatonit, 0o755)}, ["dev", "etc", "proc", "sys"])
    return docker_archive(PAUSE_IMAGE, layer, {"config": {"Entrypoint": ["/catatonit", "-P"], "User": "65535:65535"}})


# ---------------------------------------------------------------- certificates


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


@dataclass
class Component:
    name: str
    command: list[str]
    health: str | None  # an http(s) URL answering 200, or unix://SOCKET accepting, when healthy
    started_at: float = field(default=0.0)


def components(bin_dir: Path, layout: Layout, stages: Path = HACK / "kwok-stages.yaml") -> list[Component]:
    """The control plane's processes in start order (stopped in reverse)."""
    return [
        Component("etcd", etcd_command(bin_dir, layout), f"http://127.0.0.1:{layout.etcd_port}/health"),
        Component("kube-apiserver", apiserver_command(bin_dir, layout), f"{layout.server}/readyz"),
        Component(
            "kube-controller-manager",
            controller_manager_command(bin_dir, layout),
            f"https://127.0.0.1:{layout.controller_manager_port}/healthz",
        ),
        Component(
            "kube-scheduler",
            scheduler_command(bin_dir, layout),
            f"https://127.0.0.1:{layout.scheduler_port}/healthz",
        ),
        Component("kwok", kwok_command(bin_dir, layout, stages), f"http://127.0.0.1:{layout.kwok_port}/healthz"),
    ]


def node_components(bin_dir: Path, layout: Layout) -> list[Component]:
    """The real nodes' processes in start order."""
    nodes = real_nodes(layout)
    return [
        Component("volume-provisioner", provisioner_command(), None),
        *(Component(f"containerd-{n.name}", ["containerd", f"--config={n.root / 'containerd.toml'}"],
                    f"unix://{n.socket}") for n in nodes),
        *(Component(f"kubelet-{n.name}", kubelet_command(bin_dir, n, layout),
                    f"http://127.0.0.1:{n.kubelet_healthz_port}/healthz") for n in nodes),
        Component("kube-proxy", kube_proxy_command(bin_dir, layout),
                  f"http://127.0.0.1:{layout.kube_proxy_healthz_port}/healthz"),
        Component("coredns", coredns_command(bin_dir, layout), f"http://127.0.0.1:{layout.coredns_ready_port}/ready"),
    ]  # fmt: skip


def pid_file(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live pid; a recycled pid has a different one. An exited
    one has none, even as a zombie: `down` does not wait for init to reap what `up` left."""
    try:
        state, *stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return None if state == "Z" else stat[18]


def recorded_pid(layout: Layout, name: str) -> int | None:
    """The pid `up` recorded for a component, if that very process still runs."""
    try:
        pid_text, start = pid_file(layout, name).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if process_start_time(pid) == start else None


def start(component: Component, layout: Layout) -> None:
    log = (layout.logs / f"{component.name}.log").open("ab")
    process = subprocess.Popen(
        component.command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=layout.root,
        start_new_session=True,  # outlives `up`, and gets no terminal signals
    )
    pid_file(layout, component.name).write_text(f"{process.pid} {process_start_time(process.pid)}\n")
    component.started_at = time.monotonic()


def stop(layout: Layout, name: str, grace: float = 15.0) -> bool:
    pid = recorded_pid(layout, name)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and recorded_pid(layout, name) == pid:
        reap(pid)
        time.sleep(0.1)
    if recorded_pid(layout, name) == pid:
        os.kill(pid, signal.SIGKILL)
        while recorded_pid(layout, name) == pid:
            reap(pid)
            time.sleep(0.05)
    reap(pid)  # our own child (tests run up and down in one process) is now a zombie
    return True


def reap(pid: int) -> None:
    """Collect a child started by this very process (tests call up and down in one process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------- health


def admin_ssl_context(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def healthy(url: str, layout: Layout) -> bool:
    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(2)
            try:
                client.connect(url.removeprefix("unix://"))
                return True
            except OSError:
                return False
    # Controller-manager and scheduler serve self-signed certificates on loopback.
    is_apiserver = url.startswith(layout.server)
    context = admin_ssl_context(layout) if is_apiserver else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(component: Component, layout: Layout, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_all(layout)  # an exited child stays a zombie (and looks alive) until reaped
        if recorded_pid(layout, component.name) is None:
            raise ClusterError(f"{component.name} exited during start-up", component.name, layout)
        if component.health is None or healthy(component.health, layout):
            elapsed = time.monotonic() - component.started_at
            print(f"    {component.name} healthy after {elapsed:.1f}s", flush=True)
            return
        time.sleep(0.25)
    raise ClusterError(f"{component.name} not healthy after {timeout:.0f}s", component.name, layout)


def start_together(group: list[Component], layout: Layout) -> None:
    """Components that do not depend on each other: all start, then each is awaited."""
    print(f"==> starting {', '.join(c.name for c in group)}", flush=True)
    for component in group:
        start(component, layout)
    for component in group:
        wait_healthy(component, layout)


def reap_all(layout: Layout) -> None:
    for pid_path in layout.pids.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            reap(int(pid_path.read_text().split()[0]))


class ClusterError(RuntimeError):
    def __init__(self, message: str, component: str, layout: Layout):
        log = layout.logs / f"{component}.log"
        tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
        super().__init__(f"{message}; last lines of {log}:\n" + "\n".join(tail))


# ---------------------------------------------------------------- the cluster


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


def register_nodes(bin_dir: Path, layout: Layout, with_real_nodes: bool = False) -> None:
    nodes = [kwok_node(z, i, tainted=with_real_nodes) for i, z in enumerate(ZONES)]
    apply(bin_dir, layout, nodes + storage_classes(with_real_nodes))


def wait_nodes_ready(bin_dir: Path, layout: Layout, timeout: float = 60.0) -> None:
    kubectl(
        bin_dir,
        layout,
        "wait",
        "node",
        "-l",
        "type=kwok",
        "--for=condition=Ready",
        f"--timeout={int(timeout)}s",
    )


def wait_default_service_account(bin_dir: Path, layout: Layout, timeout: float = 60.0) -> None:
    """Pods cannot be created in a namespace until its `default` ServiceAccount exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kubectl(bin_dir, layout, "-n", "default", "get", "serviceaccount", "default")
            return
        except RuntimeError:
            time.sleep(0.25)
    raise RuntimeError("the default ServiceAccount never appeared (is the controller-manager running?)")


def running_components(layout: Layout) -> list[str]:
    return [p.stem for p in sorted(layout.pids.glob("*.pid")) if recorded_pid(layout, p.stem)]


def build_binaries() -> Path:
    subprocess.run(["bash", str(HACK / "build-binaries.sh")], check=True)
    out = subprocess.run(
        ["bash", str(HACK / "build-binaries.sh"), "--print-bin-dir"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def up(layout: Layout, with_real_nodes: bool = False) -> int:
    running = running_components(layout)
    if running:
        kind = "with real nodes" if layout.nodes.exists() else "kwok nodes only"
        print(f"kuberds local cluster already running ({kind}: {', '.join(running)}); kubeconfig: {layout.kubeconfig}")
        return 0
    began = time.monotonic()
    bin_dir = build_binaries()
    problems = real_node_problems(bin_dir, layout) if with_real_nodes else []
    if problems:
        print("error: real nodes cannot start here:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    if layout.root.exists():
        stop_all(layout)  # leftovers of a crashed run (containers, mounts, interfaces) go first
        remove_state(layout)
    for directory in (layout.root, layout.logs, layout.pids):
        directory.mkdir(parents=True, exist_ok=True)
    print(f"==> certificates and kubeconfigs in {layout.root}", flush=True)
    clients = identities(with_real_nodes)
    make_pki(layout, clients)
    for identity in clients:
        path = layout.kubeconfig if identity.name == "admin" else layout.component_kubeconfig(identity.name)
        path.write_text(json.dumps(kubeconfig(layout, identity.name), indent=2))
        path.chmod(0o600)
    (layout.root / "kube-scheduler.yaml").write_text(json.dumps(scheduler_config(layout), indent=2))
    stages = layout.root / "kwok-stages.yaml"
    stages.write_text(kwok_stages((HACK / "kwok-stages.yaml").read_text(), with_real_nodes))
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as background:
            images = start_runtimes(bin_dir, layout, background) if with_real_nodes else None
            for component in components(bin_dir, layout, stages):
                print(f"==> starting {component.name}", flush=True)
                start(component, layout)
                wait_healthy(component, layout)
            print("==> registering kwok nodes in " + ", ".join(ZONES) + " and StorageClasses", flush=True)
            register_nodes(bin_dir, layout, with_real_nodes)
            wait_nodes_ready(bin_dir, layout)
            wait_default_service_account(bin_dir, layout)
            if images:
                start_real_nodes(bin_dir, layout, images)
    except (ClusterError, RuntimeError, OSError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        stop_all(layout)
        return 1
    print(f"==> cluster up in {time.monotonic() - began:.1f}s")
    print(f"    export KUBECONFIG={layout.kubeconfig}")
    return 0


def stop_all(layout: Layout, errors: list[str] | None = None) -> list[str]:
    errors = [] if errors is None else errors
    stopped = stop_real_nodes(layout, errors) if layout.nodes.exists() else []
    names = [c.name for c in reversed(components(Path("/nonexistent"), layout))]
    return stopped + [name for name in names if stop(layout, name)]


def remove_state(layout: Layout) -> None:
    """Everything but the logs, which stay for a post-mortem until the next `up`."""
    # A mount under the state (a kubelet's subPath of a hostPath) could lead rmtree outside it.
    unmount_under(layout.root)
    if mounts_under(layout.root):
        raise RuntimeError(f"still mounted under {layout.root}: {', '.join(mounts_under(layout.root))}")
    for entry in layout.root.iterdir():
        if entry.name == "logs":
            for log in entry.iterdir():
                log.rename(log.with_suffix(".log.previous")) if log.suffix == ".log" else log.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def down(layout: Layout) -> int:
    errors: list[str] = []
    stopped = stop_all(layout, errors)
    if errors:
        # The state (pid files, the record of the host before `up`) stays for a second `down`.
        print(f"stopped: {', '.join(stopped) or 'nothing'}; not cleaned up:", *errors, sep="\n  ", file=sys.stderr)
        print("run `down` again; the state stays in " + str(layout.root), file=sys.stderr)
        return 1
    if layout.root.exists():
        remove_state(layout)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}; state removed from {layout.root}")
    return 0


def status(layout: Layout) -> int:
    running = set(running_components(layout))
    print(f"state:      {layout.root}")
    print(f"kubeconfig: {layout.kubeconfig}")
    all_up = True
    listed = components(Path("/nonexistent"), layout)
    if layout.nodes.exists():
        listed += node_components(Path("/nonexistent"), layout)
    for component in listed:
        alive = component.name in running
        ok = alive and (component.health is None or healthy(component.health, layout))
        all_up &= ok
        state = "healthy" if ok else ("running, unhealthy" if alive else "stopped")
        print(f"  {component.name:<24} {state:<19} log: {layout.logs / (component.name + '.log')}")
    if layout.nodes.exists():
        for node in real_nodes(layout):
            print(f"  {node.name}: containerd {node.socket}, kubelet :{node.kubelet_port}, {node.zone}")
    return 0 if all_up else 3


# ---------------------------------------------------------------- real nodes: start


def step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.monotonic()


def done(began: float, message: str) -> None:
    print(f"    {message} after {time.monotonic() - began:.1f}s", flush=True)


def real_node_problems(bin_dir: Path, layout: Layout) -> list[str]:
    """What this machine lacks for real nodes, each with what to do about it."""
    install = "(bash hack/install-debian-packages.sh)"
    problems = [] if os.geteuid() == 0 else ["real nodes need root: containerd, mounts, iptables, cgroups"]
    for tool in NODE_TOOLS:
        if not shutil.which(tool):
            problems.append(f"{tool} is missing {install}")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN_DIR / plugin).exists():
            problems.append(f"CNI plugin {CNI_BIN_DIR / plugin} is missing {install}")
    for controller in ("cpu", "cpuacct", "cpuset", "memory", "pids"):
        if not (CGROUP_MOUNTS / controller).is_dir():
            problems.append(f"cgroup v1 controller {controller} is not mounted under {CGROUP_MOUNTS}")
    if not (bin_dir / "coredns").exists():
        problems.append(f"{bin_dir / 'coredns'} is missing (bash hack/build-binaries.sh)")
    if layout.advertise_address.startswith("127."):
        problems.append("no default route: a kubelet needs a node IP that is not loopback")
    for path in (s for node in real_nodes(layout) for s in node.sockets()):
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            problems.append(f"socket path too long for unix sockets: {path} (set a shorter KUBERDS_CLUSTER_DIR)")
    return problems


@dataclass(frozen=True)
class Imports:
    """The image import that runs while the control plane starts."""

    future: concurrent.futures.Future
    started_at: float


def start_runtimes(bin_dir: Path, layout: Layout, background: concurrent.futures.Executor) -> Imports:
    """The first half, before the control plane: the host, both containerds, and their
    images importing in the background (none of it needs the API server)."""
    nodes = real_nodes(layout)
    began = step("real nodes: host networking, cgroups, node configuration")
    prepare_host(layout, nodes)
    write_node_configs(layout, nodes)
    done(began, "prepared")
    start_together([c for c in node_components(bin_dir, layout) if c.name.startswith("containerd-")], layout)
    archives = [pause_image_archive(), smoke_image_archive()]
    print(f"==> importing {PAUSE_IMAGE} and {SMOKE_IMAGE} (in the background)", flush=True)
    return Imports(background.submit(import_images, nodes, archives), time.monotonic())


def start_real_nodes(bin_dir: Path, layout: Layout, images: Imports) -> None:
    """The second half, once the control plane serves: everything else, then a smoke test."""
    nodes = real_nodes(layout)
    apply(bin_dir, layout, cluster_dns_objects(layout))
    started = node_components(bin_dir, layout)
    start_together([c for c in started if c.name == "volume-provisioner"], layout)
    step("images: waiting for the import into " + ", ".join(n.name for n in nodes))
    images.future.result()
    done(images.started_at, "imported")
    start_together([c for c in started if c.name.startswith("kubelet-")], layout)
    began = step("waiting for the kubelets to register " + ", ".join(n.name for n in nodes))
    wait_real_nodes(bin_dir, layout, ready=False)
    done(began, "registered")
    start_together([c for c in started if c.name in ("kube-proxy", "coredns")], layout)
    began = step("waiting for " + " and ".join(n.name for n in nodes) + " to be Ready")
    wait_real_nodes(bin_dir, layout, ready=True)
    done(began, "Ready")
    began = step("smoke test: a pod resolves kubernetes.default and connects to it")
    print(f"    {smoke_test(bin_dir, layout)}", flush=True)
    done(began, "passed")


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", name).write_text(value)


def host_record(layout: Layout) -> Path:
    return layout.nodes / "host-before.json"


def host_snapshot() -> dict:
    """What `down` must leave as it found it: which HOST_PATHS and iptables tables existed."""
    return {
        "absent": [str(p) for p in HOST_PATHS if not p.exists()],
        "tables": {family: iptables_tables(iptables_save(family)) for family in IPTABLES_FAMILIES},
    }


def prepare_host(layout: Layout, nodes: list[RealNode]) -> None:
    """Forwarding between the bridges, iptables for bridged traffic, the kubelets' cgroup
    roots, the pods' masquerade rule; and a note of what the host had before."""
    if found := real_nodes_running(nodes):
        raise RuntimeError(f"another cluster's real nodes run on this machine ({found}): `down` that one first")
    layout.nodes.mkdir(parents=True, exist_ok=True)
    host_record(layout).write_text(json.dumps(host_snapshot()))
    write_sysctl("net/ipv4/ip_forward", "1")
    if not Path("/proc/sys/net/bridge").exists():
        subprocess.run(["modprobe", "br_netfilter"], check=True)
    write_sysctl("net/bridge/bridge-nf-call-iptables", "1")
    for node in nodes:
        make_cgroup(node.cgroup_root)
    clean_iptables(None)  # a crashed run's rules would otherwise stay twice
    subprocess.run(["iptables-restore", "--noflush"], input=pod_masquerade_rules(), text=True, check=True)


def real_nodes_running(nodes: list[RealNode]) -> str:
    """Signs of real nodes (ours are gone by now): two clusters' nodes would share bridges,
    cgroups and kube-proxy's chains."""
    bridges = [n.bridge for n in nodes if Path("/sys/class/net", n.bridge).exists()]
    return ", ".join(bridges + (["processes in /kuberds cgroups"] if pod_pids() else []))


def cgroup_hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP_MOUNTS.iterdir() if (p / "cgroup.procs").exists())


def make_cgroup(path: str) -> None:
    """The kubelet insists that its cgroupRoot exists in every hierarchy."""
    for hierarchy in cgroup_hierarchies():
        current = hierarchy
        for part in path.strip("/").split("/"):
            parent, current = current, current / part
            if current.exists():
                continue
            current.mkdir()
            if hierarchy.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given some
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (current / name).write_text((parent / name).read_text())


def write_node_configs(layout: Layout, nodes: list[RealNode]) -> None:
    for node in nodes:
        (node.cni_dir / "net.d").mkdir(parents=True, exist_ok=True)
        (node.root / "containerd.toml").write_text(toml(containerd_config(node)))
        (node.cni_dir / "template.conflist").write_text(json.dumps(cni_config_template(node), indent=2))
        (node.root / "kubelet.yaml").write_text(json.dumps(kubelet_config(node, layout), indent=2))
    (layout.root / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config(layout), indent=2))
    (layout.root / "Corefile").write_text(corefile(layout))
    layout.volumes.mkdir(exist_ok=True)


def image_cache() -> Path:
    root = os.environ.get("KUBERDS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kuberds"
    cache = Path(root) / "images"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def cached_archive(name: str, key: str, make: Callable[[Path], object]) -> Path:
    """<cache>/NAME-KEY.tar, made once per key; older keys of NAME are removed."""
    archive = image_cache() / f"{name}-{key[:12]}.tar"
    if not archive.exists():
        for stale in image_cache().glob(f"{name}-*.tar"):
            stale.unlink()
        partial = archive.with_suffix(".partial")
        make(partial)
        partial.rename(archive)
    return archive


def pause_image_archive() -> Path:
    catatonit = Path(shutil.which("catatonit") or "catatonit").read_bytes()
    return cached_archive(
        "pause", hashlib.sha256(catatonit).hexdigest(), lambda p: p.write_bytes(pause_image(catatonit))
    )


def smoke_image_archive() -> Path:
    """The smoke test's image, saved from podman once per image ID."""
    inspect = ["podman", "image", "inspect", "--format", "{{.Id}}", SMOKE_IMAGE]
    found = subprocess.run(inspect, capture_output=True, text=True)
    if found.returncode != 0:
        raise RuntimeError(f"podman has no {SMOKE_IMAGE}; make it with: python3 hack/images.py build base")
    save = ["podman", "save", "--quiet", "--format", "docker-archive", "-o"]
    return cached_archive(
        "debian-bookworm-slim",
        found.stdout.strip(),
        lambda p: subprocess.run([*save, str(p), SMOKE_IMAGE], check=True, capture_output=True),
    )


def import_images(nodes: list[RealNode], archives: list[Path]) -> None:
    """Into the CRI's namespace of every node's containerd, the nodes in parallel."""

    def import_into(node: RealNode) -> None:
        for archive in archives:
            ctr = ["ctr", "--address", str(node.socket), "-n", "k8s.io", "images", "import", str(archive)]
            result = subprocess.run(ctr, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{node.name}: {' '.join(ctr)} failed: {result.stderr.strip()}")

    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(import_into, node) for node in nodes]:
            future.result()


def wait_real_nodes(bin_dir: Path, layout: Layout, ready: bool, timeout: float = 120.0) -> None:
    """Until every real node is registered (and, with `ready`, reports Ready)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = json.loads(kubectl(bin_dir, layout, "get", "nodes", "-l", f"{REAL_NODE_LABEL}=real", "-o", "json"))
        there = {n["metadata"]["name"] for n in listed["items"] if is_ready(n) or not ready}
        missing = sorted({name for name, _ in REAL_NODES} - there)
        if not missing:
            return
        if time.monotonic() > deadline:
            message = f"{', '.join(missing)} not {'Ready' if ready else 'registered'} after {timeout:.0f}s"
            raise ClusterError(message, f"kubelet-{missing[0]}", layout)
        time.sleep(0.5)


def is_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def smoke_test(bin_dir: Path, layout: Layout, timeout: float = 90.0) -> str:
    """Runs smoke_pod to completion and returns what it found; the pod is deleted after."""
    pod = smoke_pod()
    name = pod["metadata"]["name"]
    apply(bin_dir, layout, [pod])
    try:
        deadline = time.monotonic() + timeout
        while (phase := pod_phase(bin_dir, layout, name))[0] not in ("Succeeded", "Failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"smoke pod still {phase[0]} after {timeout:.0f}s")
            time.sleep(0.25)
        logs = kubectl(bin_dir, layout, "logs", name)
        if phase[0] != "Succeeded" or f"resolved: {KUBERNETES_SERVICE_IP} " not in logs:
            raise RuntimeError(f"smoke pod {phase[0]} on {phase[1]}; its output:\n{logs}")
        return f"on {phase[1]}: kubernetes.default -> {KUBERNETES_SERVICE_IP}, {KUBERNETES_SERVICE_IP}:443 connected"
    finally:
        kubectl(bin_dir, layout, "delete", "pod", name, "--ignore-not-found", "--timeout=30s")


def pod_phase(bin_dir: Path, layout: Layout, name: str) -> tuple[str, str]:
    """The pod's phase and node ("" until known)."""
    out = kubectl(bin_dir, layout, "get", "pod", name, "-o", "jsonpath={.status.phase}/{.spec.nodeName}")
    phase, _, node = out.partition("/")
    return phase, node


# ---------------------------------------------------------------- real nodes: stop


def stop_real_nodes(layout: Layout, errors: list[str]) -> list[str]:
    """Stops the node processes, then removes what their pods left: processes, shims,
    mounts, interfaces, iptables chains, cgroups. Pods are not drained: the state goes.
    A step that fails is reported in `errors` and the others still run, so one stuck
    mount never leaves the whole cluster running; `down` again finishes the job."""

    def attempt(what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            errors.append(f"{what}: {error}")

    listed = [c.name for c in reversed(node_components(Path("/nonexistent"), layout))]
    stopped = [n for n in listed if not n.startswith("containerd-") and stop(layout, n)]
    attempt("killing pod processes", kill_pod_processes)
    stopped += [n for n in listed if n.startswith("containerd-") and stop(layout, n)]
    nodes = real_nodes(layout)
    before = json.loads(host_record(layout).read_text()) if host_record(layout).exists() else None
    attempt("killing shims", lambda: kill_shims([node.socket for node in nodes]))
    attempt("unmounting", lambda: unmount_under(layout.root))
    for node in nodes:
        attempt(f"deleting bridge {node.bridge}", lambda node=node: delete_bridge(node.bridge))
    attempt("cleaning iptables", lambda: clean_iptables(before))
    attempt("removing cgroups", remove_cgroups)
    attempt("removing leftovers", lambda: remove_leftovers(layout, nodes, before["absent"] if before else []))
    return stopped


def pod_cgroups() -> list[Path]:
    return [h / CGROUP_PARENT for h in cgroup_hierarchies() if (h / CGROUP_PARENT).is_dir()]


def kill_pod_processes(timeout: float = 15.0) -> None:
    """SIGKILL to every process in the pods' cgroups, until none is left."""
    deadline = time.monotonic() + timeout
    while pids := pod_pids():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"pod processes survive SIGKILL: {sorted(pids)}")
        time.sleep(0.1)


def pod_pids() -> set[int]:
    pids: set[int] = set()
    for root in pod_cgroups():
        # Pods' cgroups go away while we walk and read them (ENOENT, ENODEV): skip those.
        for directory, _, files in os.walk(root, onerror=lambda error: None):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids |= {int(pid) for pid in Path(directory, "cgroup.procs").read_text().split()}
    return pids


def kill_shims(sockets: list[Path]) -> None:
    """containerd's shims outlive it; ours are the ones given one of our sockets."""
    ours = {str(s) for s in sockets}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if "containerd-shim" in args[0] and any(a in ours for a in args):
                os.kill(int(proc.name), signal.SIGKILL)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below root, the most recent and deepest first (the unmount order)."""
    prefix = os.path.realpath(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # The mount point is the 5th field; spaces in it are written as \040.
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return [p for _, p in sorted(enumerate(points), key=lambda ip: (ip[1].count("/"), ip[0]), reverse=True)]


def unmount_under(root: Path) -> None:
    for _ in range(3):
        points = mounts_under(root)
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "--lazy", point], capture_output=True)
        if not points:
            return


def delete_bridge(bridge: str) -> None:
    """A bridge and whatever is still attached (a veth whose namespace is being freed)."""
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0:
        return
    listed = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True)
    for link in json.loads(listed.stdout or "[]"):
        subprocess.run(["ip", "link", "delete", link["ifname"]], capture_output=True)
    subprocess.run(["ip", "link", "delete", bridge], check=True, capture_output=True)


IPTABLES_FAMILIES = {"iptables": "ip", "ip6tables": "ip6"}  # and their nftables families


def iptables_save(family: str) -> str:
    if not shutil.which(f"{family}-save"):
        return ""
    return subprocess.run([f"{family}-save"], capture_output=True, text=True, check=True).stdout


def iptables_tables(saved: str, only_empty: bool = False) -> list[str]:
    """The tables in iptables-save output; `only_empty`: those with no rule, own chain or policy."""
    tables: dict[str, bool] = {}
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = True
        elif line.startswith("-A ") or (line.startswith(":") and " ACCEPT " not in line):
            tables[table] = False
    return [t for t, empty in tables.items() if empty or not only_empty]


def clean_iptables(before: dict | None) -> None:
    """Our chains go; so do the tables (empty now) that iptables made for them, when `before`
    says the host had none (iptables-nft leaves the tables behind)."""
    for family, nft_family in IPTABLES_FAMILIES.items():
        if script := iptables_cleanup(iptables_save(family)):
            subprocess.run([f"{family}-restore", "--noflush"], input=script, text=True, check=True)
        if before is None or not shutil.which("nft"):
            continue
        for table in iptables_tables(iptables_save(family), only_empty=True):
            if table not in before["tables"].get(family, []):
                subprocess.run(["nft", "delete", "table", nft_family, table], check=True)


def remove_cgroups() -> None:
    for root in pod_cgroups():
        remove_empty_directories(root)  # a cgroup with no process and no child is empty


def remove_leftovers(layout: Layout, nodes: list[RealNode], absent: list[str]) -> None:
    """What the nodes left outside the state directory, and only that: containerd, the
    kubelets and the CNI plugins use some fixed host paths whatever they are told."""
    for link in Path("/var/log/containers").glob("*.log"):  # the kubelets' links to our pods' logs
        if link.is_symlink() and os.readlink(link).startswith(f"{layout.root}/"):
            link.unlink()
    for node in nodes:
        # A killed shim leaves its socket, named after containerd's address, namespace and task.
        for task in (node.root / "containerd-state" / "io.containerd.runtime.v2.task" / "k8s.io").glob("*"):
            digest = hashlib.sha256(f"{node.socket}/k8s.io/{task.name}".encode()).hexdigest()
            Path("/run/containerd/s", digest).unlink(missing_ok=True)
        # libcni's result cache: per sandbox one entry for the bridge network, one for loopback.
        for result in Path("/var/lib/cni/results").glob(f"{node.bridge}-*"):
            sandbox = result.name.removeprefix(f"{node.bridge}-").split("-")[0]
            result.unlink()
            Path("/var/lib/cni/results", f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
    if "/var/lib/kubelet" in absent:  # no other kubelet here: its fixed device-plugin path is ours
        for name in ("kubelet.sock", "kubelet_internal_checkpoint"):
            Path("/var/lib/kubelet/device-plugins", name).unlink(missing_ok=True)
    for path in map(Path, absent):
        remove_empty_directories(path)


def remove_empty_directories(root: Path) -> None:
    """rmdir, children first: what is not empty (someone else's) stays."""
    if root.is_dir() and not root.is_symlink():
        for directory, _, _ in sorted(os.walk(root), key=lambda entry: -entry[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


# ---------------------------------------------------------------- the volume provisioner


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


QUANTITY_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                     "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


def quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity ("10Gi", "1.5G", "1e9") as a number; ValueError otherwise (the
    API server validates quantities, so only a new notation could get here)."""
    match = re.fullmatch(r"([0-9.eE+-]*?)([kMGTPE]i?|)", text)
    try:
        return decimal.Decimal(match.group(1)) * QUANTITY_SUFFIXES[match.group(2)]
    except (AttributeError, decimal.InvalidOperation) as error:
        raise ValueError(f"not a quantity this provisioner understands: {text!r}") from error


def volume_name(claim: dict) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def local_volume(claim: dict, storage_class: dict, path: Path) -> dict:
    """A PersistentVolume pre-bound to the claim. `local`, not `hostPath`: kubelets give a
    local volume to the pod's fsGroup, as a real disk, and never a hostPath. Both real nodes
    are this machine, so the directory is there whichever of them the pod lands on."""
    meta, spec = claim["metadata"], claim["spec"]
    real = {"key": REAL_NODE_LABEL, "operator": "In", "values": ["real"]}
    claim_ref = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim_ref},
            "local": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [real]}]}},
        },
    }


def provision_once(api: Api, volumes: Path) -> None:
    """One pass: volumes for new claims, more capacity for grown ones, none for released ones."""
    classes = {
        c["metadata"]["name"]: c
        for c in api.items("/apis/storage.k8s.io/v1/storageclasses")
        if c.get("provisioner") == PROVISIONER
    }
    existing = {pv["metadata"]["name"]: pv for pv in api.items("/api/v1/persistentvolumes")}
    for claim in api.items("/api/v1/persistentvolumeclaims"):
        storage_class = classes.get(claim["spec"].get("storageClassName") or "")
        if storage_class is None or "deletionTimestamp" in claim["metadata"]:
            continue
        volume = existing.get(volume_name(claim))
        if volume is None and not claim["spec"].get("volumeName"):
            create_volume(api, claim, storage_class, volumes)
        elif volume is not None and storage_class.get("allowVolumeExpansion"):
            expand_volume(api, claim, volume)
    for volume in existing.values():
        annotations = volume["metadata"].get("annotations", {})
        released = volume.get("status", {}).get("phase") == "Released"
        deletable = volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        if annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and released and deletable:
            delete_volume(api, volume, volumes)


def create_volume(api: Api, claim: dict, storage_class: dict, volumes: Path) -> None:
    meta = claim["metadata"]
    if claim["spec"].get("volumeMode") == "Block":
        return  # a directory cannot be a block device; the claim stays Pending
    path = volumes / volume_name(claim)
    # Like a fresh filesystem: root's, 0755. The kubelet hands it to the pod's fsGroup.
    path.mkdir(mode=0o755, exist_ok=True)
    try:
        api.call("POST", "/api/v1/persistentvolumes", local_volume(claim, storage_class, path))
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: made by an earlier pass
            raise
    print(f"provisioned {volume_name(claim)} for {meta['namespace']}/{meta['name']} at {path}", flush=True)


def expand_volume(api: Api, claim: dict, volume: dict) -> None:
    """A directory has no size to grow: the new size is recorded, as a resizer would."""
    wanted = claim["spec"]["resources"]["requests"]["storage"]
    has = claim.get("status", {}).get("capacity", {}).get("storage")
    if claim.get("status", {}).get("phase") != "Bound" or has is None or quantity(wanted) <= quantity(has):
        return
    if quantity(volume["spec"]["capacity"]["storage"]) < quantity(wanted):
        api.call("PATCH", f"/api/v1/persistentvolumes/{volume['metadata']['name']}",
                 {"spec": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    meta = claim["metadata"]
    api.call("PATCH", f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
             {"status": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    print(f"expanded {volume['metadata']['name']} to {wanted}", flush=True)


def delete_volume(api: Api, volume: dict, volumes: Path) -> None:
    path = Path(volume["spec"].get("local", {}).get("path", "/nonexistent"))
    # Only a directory this provisioner made: named after the volume, under our volumes.
    if path.parent == volumes and path.name == volume["metadata"]["name"] and path.is_dir():
        shutil.rmtree(path)
    with contextlib.suppress(urllib.error.HTTPError):
        api.call("DELETE", f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
    print(f"deleted {volume['metadata']['name']} and {path}", flush=True)


def run_provisioner(layout: Layout, interval: float = 1.0) -> int:
    """`cluster.py provisioner`: the real nodes' dynamic volumes, until stopped."""
    api = Api(layout)
    layout.volumes.mkdir(parents=True, exist_ok=True)
    print(f"provisioner {PROVISIONER}: volumes under {layout.volumes}", flush=True)
    while True:
        try:
            provision_once(api, layout.volumes)
        except (OSError, ValueError, KeyError) as error:  # the next pass retries
            print(f"provisioning pass failed: {error!r}", flush=True)
        time.sleep(interval)


# ---------------------------------------------------------------- command line


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "provisioner"])
    parser.add_argument(
        "--real-nodes",
        action="store_true",
        default=os.environ.get("KUBERDS_REAL_NODES", "") not in ("", "0"),
        help="up: also two real nodes (containerd, kubelet), kube-proxy, CoreDNS, volumes (root only)",
    )
    args = parser.parse_args(argv)
    layout = default_layout()
    if args.command == "up":
        return up(layout, args.real_nodes)
    return {"down": down, "status": status, "provisioner": run_provisioner}[args.command](layout)


if __name__ == "__main__":
    sys.exit(main())
