"""What the local cluster changes on this machine and how each change is undone: sysctls,
cgroups, the pods' processes and shims, mounts, bridges, iptables chains, the routes
that keep the cluster's address ranges on this machine, and paths outside the state."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .layout import (
    CGROUP_MOUNTS,
    CGROUP_PARENT,
    HOST_PATHS,
    ROUTE_PROTOCOL,
    SERVICE_CIDR,
    SERVICE_SINK,
    Layout,
    RealNode,
)
from .realnode import containment_routes, iptables_cleanup


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


def detach_loops_under(root: Path) -> list[str]:
    """Loop devices whose backing file is below root (volumes a killed provisioner left):
    unmounted volumes free theirs, this catches the rest. Returns those still attached."""
    prefix = os.path.realpath(root) + "/"
    listed = subprocess.run(["losetup", "--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"],
                            capture_output=True, text=True)  # fmt: skip
    left = []
    for line in listed.stdout.splitlines():
        device, _, backing = line.partition(" ")
        ours = backing.startswith(prefix)
        detached = ours and subprocess.run(["losetup", "--detach", device], capture_output=True).returncode == 0
        if ours and not detached:
            left.append(f"{device} ({backing})")
    return left


def delete_bridge(bridge: str) -> None:
    """A bridge and whatever is still attached (a veth whose namespace is being freed)."""
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0:
        return
    listed = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True)
    for link in json.loads(listed.stdout or "[]"):
        subprocess.run(["ip", "link", "delete", link["ifname"]], capture_output=True)
    subprocess.run(["ip", "link", "delete", bridge], check=True, capture_output=True)


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def contain_cluster_ranges() -> None:
    """Installs containment_routes (replacing, so an `up` after a crash finds them as new)."""
    if subprocess.run(["ip", "link", "show", SERVICE_SINK], capture_output=True).returncode != 0:
        ip("link", "add", SERVICE_SINK, "type", "bridge")
    ip("link", "set", SERVICE_SINK, "up")
    for route in containment_routes().values():
        ip("route", "replace", *route)


def contained_ranges() -> list[str]:
    """The cluster ranges our routes hold now."""
    return [dst for dst in containment_routes() if ip("route", "show", "exact", dst, "proto", ROUTE_PROTOCOL).strip()]


def other_cluster_running() -> bool:
    """Whether another local cluster's API server (a second one beside the first, as
    KUBERDS_CLUSTER_PORT_OFFSET allows) runs on this machine: it uses the same ranges."""
    ours = f"--service-cluster-ip-range={SERVICE_CIDR}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if args[0].endswith(b"kube-apiserver") and ours in args:
                return True
    return False


def release_cluster_ranges() -> None:
    """Removes our routes (only those with our protocol number) and the sink bridge."""
    for destination in contained_ranges():
        ip("route", "delete", *containment_routes()[destination])
    delete_bridge(SERVICE_SINK)


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
