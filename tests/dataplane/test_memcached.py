"""Memcached nodes as real processes (memcached under `kuberds agent memcached`), their
membership read from the real API server: a cluster client discovers the nodes through any
node's configuration port, hashes keys over them, and follows nodes joining and leaving."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError
from tests.support.kube import Cluster, wait_for
from tests.support.memcached import LocalCache, discover, hash_client

from kuberds.agent.kube import AgentKube, KubeError
from kuberds.agent.memcached.agent import read_stats
from kuberds.restclient import CORE, RestClient


@pytest.fixture
def cache(cluster: Cluster, namespace: str, workroot: Path, request: pytest.FixtureRequest) -> Iterator[LocalCache]:
    local = LocalCache(cluster, namespace, "sessions", Path(tempfile.mkdtemp(prefix="m", dir=workroot)),
                       tls_only=getattr(request, "param", {}).get("tls_only", False))  # fmt: skip
    with local:
        try:
            yield local
        except BaseException:
            print(local.logs())
            raise


def wait_version(port: int, version: int, timeout: float = 15) -> float:
    """Seconds until the node at `port` serves `version`."""
    began = time.monotonic()
    wait_for(lambda: discover(port).version == version, timeout=timeout, what=f"discovery version {version}")
    return time.monotonic() - began


def items(port: int) -> int:
    return int(read_stats(port)["curr_items"])


def test_clients_discover_the_nodes_and_follow_them_joining_and_leaving(cache: LocalCache) -> None:
    first, second, third = cache.nodes
    two = cache.publish(0, 1)  # the operator's view: the third node is not ready yet
    for node in (first, second):  # each agent reads the ConfigMap on its own (CI saw the second late)
        wait_version(node.discovery_port, two.version)
    found = discover(second.discovery_port)
    assert [n.port for n in found.nodes] == [first.port, second.port]
    assert discover(first.discovery_port, legacy=True) == found  # clients from before `config`

    client = hash_client(found)
    for i in range(200):
        assert client.set(f"key-{i}", f"value-{i}".encode())
    assert all(client.get(f"key-{i}") == f"value-{i}".encode() for i in range(200))
    assert items(first.port) > 20 and items(second.port) > 20 and items(third.port) == 0
    assert items(first.port) + items(second.port) == 200

    three = cache.publish(0, 1, 2)  # the third node became ready
    assert three.version == two.version + 1
    took = max(wait_version(node.discovery_port, three.version) for node in (third, first))
    print(f"\n  a membership change reached the agents in {took:.2f} s")
    joined = discover(first.discovery_port)
    assert [n.port for n in joined.nodes] == [first.port, second.port, third.port]
    client = hash_client(joined)
    for i in range(200, 400):
        client.set(f"key-{i}", b"x")
    assert items(third.port) > 0  # consistent hashing sends a share to the new node

    before = hash_client(found)  # where the first keys went, as the two-node client hashed them
    after = cache.publish(0, 2)  # scaled in: the second node leaves
    for node in cache.nodes:  # every node serves the same answer once its agent read the ConfigMap
        wait_version(node.discovery_port, after.version)
    left = discover(third.discovery_port)
    assert [n.port for n in left.nodes] == [first.port, third.port]
    client = hash_client(left)
    kept = sum(1 for i in range(200) if client.get(f"key-{i}") == f"value-{i}".encode())
    on_first = ("127.0.0.1", first.port)
    expected = sum(1 for i in range(200) if _node(before, f"key-{i}") == on_first == _node(client, f"key-{i}"))
    print(f"  after the second node left, {kept}/200 of the first keys still hit")
    assert kept == expected > 0  # exactly the keys that stay on the node that stayed


def test_metrics_come_from_memcached_itself(cache: LocalCache) -> None:
    node = cache.nodes[0]
    published = cache.publish(0, 1, 2)
    wait_version(node.discovery_port, published.version)
    client = hash_client(discover(node.discovery_port))
    client.set("a", b"1")
    client.get("a")
    client.get("missing")
    text = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=5).read().decode()
    figures = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
               if line.startswith("kuberds_memcached_")}  # fmt: skip
    assert figures["kuberds_memcached_up"] == 1
    assert figures["kuberds_memcached_discovery_version"] == published.version
    assert figures["kuberds_memcached_limit_bytes"] == 361 * 2**20  # agent.json's item memory
    total = sum(float(read_stats(n.port)["get_hits"]) for n in cache.nodes)
    assert total == 1


def test_the_agent_reads_its_own_membership_and_nothing_else(cache: LocalCache) -> None:
    api = kubernetes.config.new_client_from_config(config_file=str(cache.kubeconfig))
    kube = AgentKube(RestClient(api, {"ConfigMap": CORE["ConfigMap"]}))
    assert kube.get("ConfigMap", cache.namespace, "sessions-discovery") is not None
    with pytest.raises(KubeError, match="403"):
        kube.get("ConfigMap", cache.namespace, "sessions-settings")


def test_a_node_whose_memcached_dies_exits_so_the_kubelet_restarts_it(cache: LocalCache) -> None:
    node = cache.nodes[1]
    memcached = next(p for p in _children(node.process.pid) if "memcached" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(memcached, signal.SIGKILL)
    assert node.process.wait(timeout=15) == 1


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _node(client, key: str) -> tuple[str, int]:
    """The node a HashClient sends `key` to."""
    return tuple(client._get_client(key).server)


@pytest.mark.parametrize("cache", [{"tls_only": True}], indirect=True)
def test_tls_only_nodes_and_their_discovery_serve_tls_to_a_cluster_client(cache: LocalCache) -> None:
    published = cache.publish(0, 1, 2)
    first = cache.nodes[0]
    wait_for(lambda: discover(first.discovery_port, tls=cache.tls).version == published.version, timeout=15,
             what="the membership over TLS")  # fmt: skip
    seen = discover(first.discovery_port, tls=cache.tls)
    client = hash_client(seen, tls=cache.tls)
    for i in range(60):
        client.set(f"tls-{i}", b"v")
    assert all(client.get(f"tls-{i}") == b"v" for i in range(60))
    assert sum(int(read_stats(n.port, tls=cache.tls)["curr_items"]) for n in cache.nodes) == 60
    with pytest.raises((ConnectionError, OSError, ValueError)):
        discover(first.discovery_port)  # plain TCP gets no membership
    with pytest.raises((MemcacheError, OSError)):
        Client(("127.0.0.1", first.port), connect_timeout=2, timeout=2).get("tls-1")  # plain TCP is refused
