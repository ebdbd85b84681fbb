"""On the local cluster, each real node's pods are routed to its bridge, below the routes that
keep the cluster's whole pod range on this machine (tests/cluster/test_containment.py checks
those on a kwok-only cluster)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest
from hack.localcluster.layout import POD_CIDR, REAL_NODE_LABEL, ROUTE_PROTOCOL
from tests.support.kube import Cluster


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def test_each_real_nodes_own_route_wins_over_the_pod_range(cluster: Cluster) -> None:
    if not cluster.local or os.geteuid() != 0:
        pytest.skip("only the hack/ cluster, run as root, routes on this machine")
    nodes = json.loads(cluster.kubectl("get", "nodes", "-l", f"{REAL_NODE_LABEL}=real", "-o", "json").stdout)["items"]
    assert len(nodes) == 2
    covering = ip("route", "show", "exact", POD_CIDR, "proto", ROUTE_PROTOCOL).stdout
    assert covering.startswith(f"unreachable {POD_CIDR}"), covering
    for node in nodes:
        name, cidr = node["metadata"]["name"], node["spec"]["podCIDR"]
        inside = str(ipaddress.ip_network(cidr)[200])  # an address of that node's pods
        found = ip("route", "get", inside)
        if Path("/sys/class/net", f"kuberds-{name}").exists():  # CNI makes it with the node's first pod
            assert found.returncode == 0 and f"dev kuberds-{name}" in found.stdout, found
        else:  # no bridge (yet): still refused here, never sent off the machine
            assert found.returncode != 0 and "No route to host" in found.stderr, found
