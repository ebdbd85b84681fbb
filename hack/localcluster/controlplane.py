"""Pure builders for the control plane: kubeconfigs, kwok's nodes and stages, and the
command lines of etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok."""

from __future__ import annotations

import base64
from pathlib import Path

from .layout import HACK, KWOK_NODE_ANNOTATION, KWOK_NODE_CAPACITY, KWOK_POD_CIDR, POD_CIDR, SERVICE_CIDR, Layout


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
