"""A Memcached CacheCluster on the real nodes: three nodes across zones, found through the
configuration endpoint by a cluster client in another pod (ElastiCache Auto Discovery), which
stores and reads keys on every node; scaled in, the client sees the node leave; a node's pod
deleted comes back in its place."""

from __future__ import annotations

import json
import time

import pytest
from tests.support.kube import ROOT, wait_for

from e2e.support import E2E

NAMESPACE = "kuberds-e2e-cache"
NAME = "sessions"
CLIENT_SCRIPT = (ROOT / "e2e" / "memcached_client.py").read_text()


def servers() -> list[dict]:
    return [{"apiVersion": "kuberds.io/v1alpha1", "kind": "CacheCluster",
             "metadata": {"name": NAME, "namespace": NAMESPACE},
             "spec": {"engine": "memcached", "numNodes": 3, "nodeType": "cache.t3.micro"}}]  # fmt: skip


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def client(e2e: E2E, prefix: str = "key") -> dict:
    """What a cluster client in the client pod discovers and stores through the endpoint."""
    endpoint = e2e.status(NAME, "cachecluster")["endpoint"]
    host, port = endpoint.rsplit(":", 1)
    return json.loads(e2e.exec(["/opt/kuberds/bin/python", "-", host, port, "300", prefix], input=CLIENT_SCRIPT))


def test_memcached_nodes_are_discovered_through_the_configuration_endpoint(e2e: E2E) -> None:
    began = time.monotonic()
    status = e2e.wait_available(NAME, timeout=300, kind="cachecluster")
    e2e.record("memcached 3 nodes apply -> Available (s)", round(time.monotonic() - began, 1))
    assert len({m.get("zone") for m in status["members"]}) >= 2, f"nodes in one zone: {status['members']}"

    seen = wait_for(lambda: (c := client(e2e)) and len(c["nodes"]) == 3 and c, timeout=60,
                    what="three nodes discovered")  # fmt: skip
    assert seen["hits"] == 300, seen
    assert all(count > 0 for count in seen["stored"].values()), f"a node got no key: {seen['stored']}"

    e2e.patch("cachecluster", NAME, {"spec": {"numNodes": 2}})
    scaled = time.monotonic()
    smaller = wait_for(lambda: (c := client(e2e, "after")) and len(c["nodes"]) == 2 and c, timeout=120,
                       interval=1, what="the scaled-away node gone from discovery")  # fmt: skip
    e2e.record("memcached scale-in -> discovery without the node (s)", round(time.monotonic() - scaled, 1))
    assert smaller["version"] > seen["version"] and smaller["hits"] == 300

    pods = {p["metadata"]["name"]: p for p in e2e.items("pods", f"app.kubernetes.io/instance={NAME}")}
    victim = sorted(pods)[0]
    old = pods[victim]
    e2e.kubectl("delete", "pod", victim, "-n", e2e.namespace, "--wait=true")
    deleted = time.monotonic()

    def replaced() -> str | None:
        pod = e2e.get("pod", victim) or {"metadata": {}}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
        return pod["status"].get("podIP") if ready and pod["metadata"].get("uid") != old["metadata"]["uid"] else None

    new_ip = wait_for(replaced, timeout=120, interval=1, what=f"{victim} replaced and ready")
    back = wait_for(lambda: (c := client(e2e, "back")) and c["hits"] == 300 and any(
        f"|{new_ip}|" in n for n in c["nodes"]) and c, timeout=60, interval=1,
        what="the replaced node in discovery at its address")  # fmt: skip
    e2e.record("memcached pod deleted -> discovery at its new address (s)", round(time.monotonic() - deleted, 1))
    assert [n.split("|")[0] for n in back["nodes"]] == [n.split("|")[0] for n in smaller["nodes"]], (
        "the node kept its place (its name) in the list"
    )
    if new_ip != old["status"]["podIP"]:
        assert back["version"] > smaller["version"], "a new address is a new version"
