"""Waiting for components to be healthy, and the error that shows the end of a failed
component's log."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.error
import urllib.request

from .client import admin_ssl_context
from .layout import Layout
from .processes import Component, reap, recorded_pid, start


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
