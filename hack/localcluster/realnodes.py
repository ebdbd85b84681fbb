"""Starting and stopping the real nodes: what the machine must have, the host set-up, the
containerds with their images, kubelets, kube-proxy, CoreDNS, the smoke test; and on stop
everything their pods left behind."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .client import apply, kubectl
from .freeze import thaw_all
from .health import ClusterError, start_together
from .host import (
    clean_iptables,
    delete_bridge,
    detach_loops_under,
    host_record,
    host_snapshot,
    kill_pod_processes,
    kill_shims,
    make_cgroup,
    pod_pids,
    remove_cgroups,
    remove_leftovers,
    unmount_under,
    write_sysctl,
)
from .layout import (
    CGROUP_MOUNTS,
    CNI_BIN_DIR,
    KUBERNETES_SERVICE_IP,
    MAX_SOCKET_PATH,
    NODE_TOOLS,
    PAUSE_IMAGE,
    REAL_NODE_LABEL,
    REAL_NODES,
    SMOKE_IMAGE,
    Layout,
    RealNode,
    real_nodes,
)
from .nodeimages import import_images, pause_image_archive, smoke_image_archive
from .processes import node_components, stop
from .realnode import (
    cluster_dns_objects,
    cni_config_template,
    containerd_config,
    corefile,
    kube_proxy_config,
    kubelet_config,
    pod_masquerade_rules,
    smoke_pod,
    toml,
)


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


def write_node_configs(layout: Layout, nodes: list[RealNode]) -> None:
    for node in nodes:
        (node.cni_dir / "net.d").mkdir(parents=True, exist_ok=True)
        (node.root / "containerd.toml").write_text(toml(containerd_config(node)))
        (node.cni_dir / "template.conflist").write_text(json.dumps(cni_config_template(node), indent=2))
        (node.root / "kubelet.yaml").write_text(json.dumps(kubelet_config(node, layout), indent=2))
    (layout.root / "kube-proxy.yaml").write_text(json.dumps(kube_proxy_config(layout), indent=2))
    (layout.root / "Corefile").write_text(corefile(layout))
    layout.volumes.mkdir(exist_ok=True)


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

    attempt("thawing frozen nodes", lambda: thaw_all(layout))  # a frozen process cannot even die
    listed = [c.name for c in reversed(node_components(Path("/nonexistent"), layout))]
    stopped = [n for n in listed if not n.startswith("containerd-") and stop(layout, n)]
    attempt("killing pod processes", kill_pod_processes)
    stopped += [n for n in listed if n.startswith("containerd-") and stop(layout, n)]
    nodes = real_nodes(layout)
    before = json.loads(host_record(layout).read_text()) if host_record(layout).exists() else None
    attempt("killing shims", lambda: kill_shims([node.socket for node in nodes]))
    attempt("unmounting", lambda: unmount_under(layout.root))

    def detach_loops() -> None:
        if left := detach_loops_under(layout.root):
            raise RuntimeError(f"still attached: {', '.join(left)}")

    attempt("detaching volumes' loop devices", detach_loops)
    for node in nodes:
        attempt(f"deleting bridge {node.bridge}", lambda node=node: delete_bridge(node.bridge))
    attempt("cleaning iptables", lambda: clean_iptables(before))
    attempt("removing cgroups", remove_cgroups)
    attempt("removing leftovers", lambda: remove_leftovers(layout, nodes, before["absent"] if before else []))
    return stopped
