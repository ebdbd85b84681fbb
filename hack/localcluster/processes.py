"""The cluster's processes: which components run with which command line, and starting and
stopping them by the pid files `up` records (a recycled pid is never taken for ours)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .controlplane import apiserver_command, controller_manager_command, etcd_command, kwok_command, scheduler_command
from .layout import HACK, Layout, real_nodes
from .realnode import coredns_command, kube_proxy_command, kubelet_command, provisioner_command


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
