"""The cluster as a whole: `up` (certificates, control plane, kwok nodes, optionally real
nodes), `down` (stop everything, remove the state) and `status`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .client import apply, kubectl
from .controlplane import kubeconfig, kwok_node, kwok_stages, scheduler_config
from .health import ClusterError, healthy, wait_healthy
from .host import (
    contain_cluster_ranges,
    contained_ranges,
    detach_loops_under,
    mounts_under,
    other_cluster_running,
    release_cluster_ranges,
    unmount_under,
)
from .layout import HACK, POD_CIDR, SERVICE_CIDR, SERVICE_SINK, SMOKE_IMAGE, ZONES, Layout, identities, real_nodes
from .nodeimages import ensure_smoke_image
from .pki import make_pki
from .processes import components, node_components, recorded_pid, start, stop
from .realnode import storage_classes
from .realnodes import real_node_problems, start_real_nodes, start_runtimes, stop_real_nodes


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
    try:
        if with_real_nodes:
            began_image = time.monotonic()
            ensure_smoke_image()
            print(f"==> base image {SMOKE_IMAGE} present after {time.monotonic() - began_image:.1f}s", flush=True)
        # First, so that the ranges stay on this machine while a crashed run's leftovers go.
        contain_ranges()
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
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
    if loops := detach_loops_under(layout.root):
        raise RuntimeError(f"loop devices still attached to volumes under {layout.root}: {', '.join(loops)}")
    for entry in layout.root.iterdir():
        if entry.name == "logs":
            for log in entry.iterdir():
                log.rename(log.with_suffix(".log.previous")) if log.suffix == ".log" else log.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def contain_ranges() -> None:
    if os.geteuid() != 0:
        print(f"    not root: no routes keep {POD_CIDR} and {SERVICE_CIDR} on this machine", flush=True)
        return
    contain_cluster_ranges()
    print(f"==> routes: {POD_CIDR} unreachable, {SERVICE_CIDR} to {SERVICE_SINK} (both stay on this machine)")


def down(layout: Layout) -> int:
    errors: list[str] = []
    stopped = stop_all(layout, errors)
    if errors:
        # The state (pid files, the record of the host before `up`) and the routes that keep
        # the cluster's ranges on this machine stay for a second `down`.
        print(f"stopped: {', '.join(stopped) or 'nothing'}; not cleaned up:", *errors, sep="\n  ", file=sys.stderr)
        print("run `down` again; the state stays in " + str(layout.root), file=sys.stderr)
        return 1
    if layout.root.exists():
        remove_state(layout)
    # Last: until nothing of the cluster is left (bridges gone, pods killed), packets for its
    # ranges must still end here rather than follow the default route.
    if os.geteuid() == 0 and other_cluster_running():
        print(f"    routes for {POD_CIDR} and {SERVICE_CIDR} stay: another local cluster runs here")
    elif os.geteuid() == 0:
        try:
            release_cluster_ranges()
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"state removed, but the routes stay: {error}; run `down` again", file=sys.stderr)
            return 1
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
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        print(f"routes kept on this machine: {', '.join(contained_ranges()) or 'none'}")
    return 0 if all_up else 3
