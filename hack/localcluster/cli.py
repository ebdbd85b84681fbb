"""A real local Kubernetes for kuberds' tests and demos.

    python3 hack/cluster.py up               # build (cached) and start, wait until healthy
    python3 hack/cluster.py up --real-nodes  # the same plus two real nodes (root; KUBERDS_REAL_NODES=1)
    python3 hack/cluster.py status           # what runs, where the logs and kubeconfig are
    python3 hack/cluster.py down             # stop what `up` started, remove the state
    python3 hack/cluster.py freeze node-a    # a real node hangs: its kubelet, containerd and pods
    python3 hack/cluster.py thaw node-a      # ... and goes on where it stopped

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
import os
import sys

from . import freeze
from .layout import default_layout
from .lifecycle import down, status, up
from .provisioner import run_provisioner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "provisioner", "freeze", "thaw"])
    parser.add_argument("node", nargs="?", help="freeze/thaw: the real node (node-a, node-b)")
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
    if args.command in ("freeze", "thaw"):
        if not args.node:
            parser.error(f"{args.command} needs a node name")
        print((freeze.freeze if args.command == "freeze" else freeze.thaw)(layout, args.node))
        return 0
    return {"down": down, "status": status, "provisioner": run_provisioner}[args.command](layout)


if __name__ == "__main__":
    sys.exit(main())
