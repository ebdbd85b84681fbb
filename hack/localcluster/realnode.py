"""Pure builders for the real nodes: containerd, CNI, kubelet, kube-proxy and CoreDNS
configuration, the cluster-DNS and StorageClass objects, the smoke pod, and the host's
iptables and route rules (as text or argument lists, applied by host.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .layout import (
    CLUSTER_DNS_IP,
    CLUSTER_DOMAIN,
    CNI_BIN_DIR,
    HACK,
    KUBERNETES_SERVICE_IP,
    PAUSE_IMAGE,
    POD_CIDR,
    PROVISIONER,
    REAL_NODE_LABEL,
    REAL_NODES,
    ROUTE_PROTOCOL,
    SERVICE_CIDR,
    SERVICE_SINK,
    SMOKE_IMAGE,
    Layout,
    RealNode,
)


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
    return [sys.executable, str(HACK / "cluster.py"), "provisioner"]


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


def containment_routes() -> dict[str, list[str]]:
    """`ip route` arguments, by destination, that keep every packet for the cluster's ranges
    on this machine. They sit below the nodes' own routes: each real node's /24 on its
    bridge is more specific and wins, so these catch only what no bridge serves (a kwok
    pod's address, a node whose bridge is down or gone). Pod addresses are unreachable:
    refused at once, locally. Service addresses cannot be: a host process's packet is routed
    before kube-proxy's DNAT rewrites it to a pod, so `unreachable` would refuse every
    Service from the host. They go to a bridge without ports instead, where what no Service
    rule rewrote finds no neighbour (EHOSTUNREACH after the ARP attempts, about 3 s)."""
    return {
        POD_CIDR: ["unreachable", POD_CIDR, "proto", ROUTE_PROTOCOL],
        SERVICE_CIDR: [SERVICE_CIDR, "dev", SERVICE_SINK, "proto", ROUTE_PROTOCOL],
    }


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
