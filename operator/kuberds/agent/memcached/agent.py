"""The Memcached node's supervisor: memcached as a child process, the discovery server fed from
the operator's membership ConfigMap, metrics read from memcached on every scrape, and the
report on the pod. memcached has no HA manager and no state worth saving: the loop only keeps
discovery current and exits when memcached does (the kubelet restarts the container)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kuberds.agent import report as reporting
from kuberds.agent.kube import KubeError
from kuberds.agent.memcached.discovery import DiscoveryServer
from kuberds.agent.metrics_http import serve_metrics
from kuberds.agent.pod import Pod
from kuberds.agent.processes import OsUser
from kuberds.contract import SETTINGS_FILE
from kuberds.contract.memcached import CacheAgentConfig, Membership, discovery_object, memcached_argv
from kuberds.contract.report import AgentReport
from kuberds.contract.settings import ClientTls

log = logging.getLogger("kuberds.agent")

LOOP_SECONDS = 1.0  # how soon a membership change reaches clients that poll this node
STATS_TIMEOUT = 2.0


def server_tls(tls: ClientTls) -> ssl.SSLContext:
    """The Auto Discovery port serves TLS with the nodes' certificate, as memcached does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(f"{tls.directory}/tls.crt", f"{tls.directory}/tls.key")
    return context


def client_tls(tls: ClientTls) -> ssl.SSLContext:
    """The agent's own connection to its node: the chain checked against the cluster's CA."""
    context = ssl.create_default_context(cafile=tls.ca_file or f"{tls.directory}/ca.crt")
    context.check_hostname = False
    return context


def read_stats(port: int, host: str = "127.0.0.1", timeout: float = STATS_TIMEOUT,
               tls: ssl.SSLContext | None = None) -> dict[str, str]:  # fmt: skip
    """memcached's `stats`, as name → value."""
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
        if tls is not None:
            conn = stack.enter_context(tls.wrap_socket(conn))
        conn.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("memcached closed the connection during stats")
            data += chunk
    stats = {}
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


GAUGES = {
    "curr_items": ("kuberds_memcached_items", "Items stored now"),
    "bytes": ("kuberds_memcached_bytes", "Bytes the items use"),
    "limit_maxbytes": ("kuberds_memcached_limit_bytes", "Item memory memcached may use"),
    "curr_connections": ("kuberds_memcached_connections", "Client connections open now"),
}
COUNTERS = {
    "get_hits": ("kuberds_memcached_get_hits", "Reads that found their key"),
    "get_misses": ("kuberds_memcached_get_misses", "Reads that did not"),
    "evictions": ("kuberds_memcached_evictions", "Items evicted to make room"),
    "cmd_get": ("kuberds_memcached_gets", "Read commands"),
    "cmd_set": ("kuberds_memcached_sets", "Store commands"),
}


def stats_metrics(stats: dict[str, str]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    for key, (name, text) in GAUGES.items():
        if key in stats:
            yield GaugeMetricFamily(name, text, value=float(stats[key]))
    for key, (name, text) in COUNTERS.items():
        if key in stats:
            yield CounterMetricFamily(name, text, value=float(stats[key]))


class Collector:
    def __init__(self, agent: MemcachedAgent):
        self.agent = agent

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("kuberds_memcached_up", "1 when memcached answers stats")
        version = GaugeMetricFamily("kuberds_memcached_discovery_version", "Auto Discovery version served")
        current = self.agent.discovery.membership
        version.add_metric([], current.version if current else 0)
        yield version
        try:
            stats = read_stats(self.agent.port, tls=self.agent.stats_tls)
        except OSError as error:
            log.warning("memcached stats: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from stats_metrics(stats)


class MemcachedAgent:
    def __init__(self, pod: Pod, kube=None):
        self.pod, self.kube = pod, kube
        self.config = CacheAgentConfig.from_json((pod.config_dir / SETTINGS_FILE).read_text())
        self.port = pod.engine_port or self.config.port
        self.program = str(Path(pod.bin_dir) / "memcached")
        tls = self.config.tls
        self.stats_tls = client_tls(tls) if tls else None
        self.discovery = DiscoveryServer(pod.listen_address, pod.agent_port, self._version(),
                                         server_tls(tls) if tls else None)  # fmt: skip
        self.process: subprocess.Popen | None = None
        self.stopping = False
        self.published: dict = {}

    def _version(self) -> str:
        out = subprocess.run([self.program, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[-1] if out.split() else "1.6"

    def read_membership(self) -> Membership | None:
        if self.kube is None:
            return None
        try:
            found = self.kube.get("ConfigMap", self.pod.namespace, discovery_object(self.config.cluster))
        except KubeError as error:
            log.warning("reading the membership: %s", error)  # keep serving the last one read
            return None
        return Membership.from_data((found or {}).get("data"))

    def report(self) -> AgentReport:
        current = self.discovery.membership
        state = "running" if self.process and self.process.poll() is None else "stopped"
        doing = [f"serving Auto Discovery version {current.version}" if current else "membership not known yet"]
        return AgentReport(state=state, doing=doing)

    def run(self) -> int:
        user = OsUser(self.pod.engine_user, {"PATH": "/usr/bin:/bin"}, Path("/tmp"))
        argv = memcached_argv(self.program, self.config, self.pod.listen_address, self.port)
        log.info("starting %s", " ".join(argv))
        self.process = user.popen(argv)
        self.discovery.start()
        serve_metrics(self.pod.metrics_port, self.pod.listen_address, Collector(self))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        while not self.stopping:
            code = self.process.poll()
            if code is not None:
                log.error("memcached exited with %s", code)
                return 1
            self.discovery.update(self.read_membership())
            if self.kube is not None:
                self.published = reporting.publish(self.kube, self.pod.namespace, self.pod.name, self.report(),
                                                   self.published)  # fmt: skip
            time.sleep(LOOP_SECONDS)
        self.process.terminate()  # nothing to hand over: a cache node just stops
        self.process.wait(timeout=30)
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
