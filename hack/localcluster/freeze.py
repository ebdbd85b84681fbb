"""Freezing a whole real node: its kubelet, its containerd and its shims, and every process
of its pods, through cgroup v1's freezer, as a node whose kernel hangs would look to the rest
of the cluster (nothing on it answers, nothing on it changes a label or a lease). Thawing
lets all of it go on where it stopped.

The pods already live under the node's cgroup root (/kuberds/<node>) in every hierarchy,
the freezer's too; the node's daemons are moved into a freezer cgroup of their own
(/kuberds-daemons/<node>, in the freezer hierarchy only), so one write freezes each group.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .layout import CGROUP_MOUNTS, CGROUP_PARENT, Layout, RealNode, real_nodes

FREEZER = CGROUP_MOUNTS / "freezer"
DAEMONS = "kuberds-daemons"


def node_of(layout: Layout, name: str) -> RealNode:
    node = next((n for n in real_nodes(layout) if n.name == name), None)
    if node is None:
        raise SystemExit(f"no real node {name} (real nodes: {', '.join(n.name for n in real_nodes(layout))})")
    return node


def daemon_pids(node: RealNode) -> list[int]:
    """The node's kubelet, containerd and shims: every process whose command line names a
    path of the node's own directory."""
    root, pids = str(node.root), []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if any(root in a for a in args):
                pids.append(int(proc.name))
    return pids


def _groups(node: RealNode) -> list[Path]:
    return [FREEZER / DAEMONS / node.name, FREEZER / CGROUP_PARENT / node.name]


def _set(group: Path, state: str, timeout: float = 10.0) -> None:
    (group / "freezer.state").write_text(state)
    deadline = time.monotonic() + timeout
    while (group / "freezer.state").read_text().strip() != state:  # FREEZING on the way
        if time.monotonic() > deadline:
            raise RuntimeError(f"{group} did not become {state}: {(group / 'freezer.state').read_text().strip()}")
        time.sleep(0.05)


def freeze(layout: Layout, name: str) -> str:
    """Freezes node `name`; returns what it froze."""
    if not FREEZER.is_dir():
        raise SystemExit(f"no cgroup v1 freezer at {FREEZER}: a node cannot be frozen here")
    node = node_of(layout, name)
    daemons, pods = _groups(node)
    daemons.mkdir(parents=True, exist_ok=True)
    pids = daemon_pids(node)
    for pid in pids:
        with contextlib.suppress(OSError):  # a process may end meanwhile
            (daemons / "cgroup.procs").write_text(str(pid))
    _set(daemons, "FROZEN")  # first: the kubelet and containerd can then start nothing new
    _set(pods, "FROZEN")
    return f"{name}: {len(pids)} node processes and every pod process frozen"


def thaw(layout: Layout, name: str) -> str:
    node = node_of(layout, name)
    for group in reversed(_groups(node)):
        if (group / "freezer.state").exists():
            _set(group, "THAWED")
    return f"{name}: thawed"


def thaw_all(layout: Layout) -> None:
    """Every node thawed and the daemons' freezer groups gone (`down`: a frozen process
    cannot even die)."""
    for node in real_nodes(layout):
        with contextlib.suppress(OSError):
            thaw(layout, node.name)
        group = FREEZER / DAEMONS / node.name
        if group.is_dir():
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (FREEZER / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()
    with contextlib.suppress(OSError):
        (FREEZER / DAEMONS).rmdir()
