"""Memcached nodes on this host for the data-plane tests: each a real `kuberds agent memcached`
(memcached as the `memcache` user, Auto Discovery, metrics) with the rights the operator gives
it, reading the membership ConfigMap from the real API server; and a discovery client as
ElastiCache cluster clients are (ask `config get cluster`, hash over the nodes it names)."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from pymemcache.client.hash import HashClient

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import CacheClusterSpec
from kuberds.builders import cache as build
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.memcached import CacheAgentConfig, Membership, Node, next_membership, parse_config_response
from kuberds.engines import cache_engine_for
from tests.support import tls as local_tls
from tests.support.kube import ROOT, Cluster, free_port, token_kubeconfig, wait_for


def discover(port: int, host: str = "127.0.0.1", legacy: bool = False,
             tls: ssl.SSLContext | None = None) -> Membership:  # fmt: skip
    """What a cluster client reads from a configuration endpoint (over TLS with `tls`)."""
    command = b"get AmazonElastiCache:cluster\r\n" if legacy else b"config get cluster\r\n"
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(socket.create_connection((host, port), timeout=5))
        if tls is not None:
            conn = stack.enter_context(tls.wrap_socket(conn))
        conn.sendall(command)
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return parse_config_response(data)


def hash_client(membership: Membership, tls: ssl.SSLContext | None = None) -> HashClient:
    """Consistent hashing over the discovered nodes, by address (as the clients use the ip)."""
    return HashClient([(n.ip, n.port) for n in membership.nodes], connect_timeout=2, timeout=2, tls_context=tls)


@dataclass
class LocalNode:
    ordinal: int
    name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    discovery_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "agent.log"


class LocalCache:
    """A Memcached CacheCluster's nodes on this host. Use as a context manager."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, workdir: Path, nodes: int = 3,
                 tls_only: bool = False):  # fmt: skip
        """`tls_only`: tls.require, its certificate issued here as the operator would."""
        self.cluster, self.namespace, self.name, self.workdir = cluster, namespace, name, workdir
        spec = parse(CacheClusterSpec, {"engine": "memcached", "numNodes": nodes, "tls": {"require": tls_only}})
        owner = Owner("CacheCluster", name, namespace, "00000000-0000-4000-8000-0000000000cc")
        self.cache = build.Cache(owner, spec, cache_engine_for("memcached"), OperatorConfig())
        self.nodes = [LocalNode(i, f"{name}-{i}", workdir / f"{name}-{i}") for i in range(nodes)]
        self.membership: Membership | None = None

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def tls(self) -> ssl.SSLContext | None:
        """A client's TLS context when the nodes serve TLS only."""
        return local_tls.client_context(self.tls_dir) if self.cache.tls_secret else None

    def __enter__(self) -> LocalCache:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.cache.tls_secret:
            self.workdir.chmod(0o755)  # memcached (another user) reads the certificate below it
            local_tls.issue(self.tls_dir, build.dns_names(self.cache))
        self.membership = Membership(1, ())  # what the operator's first pass publishes: no node ready yet
        objects = [o for o in build.cache_objects(self.cache, self.membership) if o["kind"] in
                   ("ServiceAccount", "Role", "RoleBinding", "ConfigMap")]  # fmt: skip
        self._apply(objects)
        self.kubeconfig = token_kubeconfig(self.cluster, f"{self.name}-agent", self.namespace,
                                           self.workdir / "kubeconfig", "agent")  # fmt: skip
        for node in self.nodes:
            self.start(node)
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            self.stop(node)

    def _apply(self, objects: list[dict]) -> None:
        for obj in objects:
            obj["metadata"].pop("ownerReferences", None)
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))

    def publish(self, *ordinals: int) -> Membership:
        """What the operator does when these nodes are the cluster: the membership ConfigMap
        (each node by its local port; in a pod every node has the same port, another address)."""
        nodes = tuple(Node(self.cache.node_host(i), "127.0.0.1", self.nodes[i].port) for i in ordinals)
        self.membership = next_membership(self.membership, nodes)
        self._apply([build.discovery_config_map(self.cache, self.membership)])
        return self.membership

    def start(self, node: LocalNode) -> None:
        config = node.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        agent_json = CacheAgentConfig.from_json(build.settings_config_map(self.cache)["data"]["agent.json"])
        if agent_json.tls is not None:  # the files where this host keeps them
            agent_json = replace(agent_json, tls=replace(agent_json.tls, directory=str(self.tls_dir),
                                                         ca_file=str(self.tls_dir / "ca.crt")))  # fmt: skip
        (config / "agent.json").write_text(agent_json.to_json())
        env = {
            "PATH": os.environ["PATH"],
            "POD_NAME": node.name,
            "POD_NAMESPACE": self.namespace,
            "POD_IP": "127.0.0.1",
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERDS_CONFIG_DIR": str(config),
            "KUBERDS_LISTEN_ADDRESS": "127.0.0.1",
            "KUBERDS_ENGINE_PORT": str(node.port),
            "KUBERDS_AGENT_PORT": str(node.discovery_port),
            "KUBERDS_METRICS_PORT": str(node.metrics_port),
            "KUBERDS_ENGINE_USER": "memcache",
            "PYTHONPATH": str(ROOT / "operator"),
        }
        node.process = subprocess.Popen([sys.executable, "-m", "kuberds", "agent", "memcached"], env=env,
                                        stdout=node.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        wait_for(lambda: _answers(node.port, self.tls) and _answers(node.discovery_port, self.tls), timeout=30,
                 what=f"{node.name}'s memcached and discovery ports")  # fmt: skip

    def stop(self, node: LocalNode) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=20)
            if node.process.poll() is None:
                os.killpg(node.process.pid, 9)
        node.process = None

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log.read_text()[-3000:]}" for n in self.nodes if n.log.exists())


def _answers(port: int, tls: ssl.SSLContext | None = None) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        if tls is not None:
            tls.wrap_socket(conn).close()  # the handshake completes: the port serves TLS
        return True
    return False
