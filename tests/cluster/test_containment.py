"""Nothing addressed to the local cluster leaves this machine: the routes `hack/cluster.py up`
installs for its pod and Service ranges (hack/localcluster/realnode.py containment_routes).
That each real node's own route still wins is checked where real nodes run: e2e/test_local_routes.py."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time

import pytest
from hack.localcluster.layout import POD_CIDR, ROUTE_PROTOCOL, SERVICE_CIDR, SERVICE_SINK

from tests.support.kube import Cluster

pytestmark = pytest.mark.cluster

# In the pod range but in no node's /24 (the controller manager hands them out from the
# bottom), and in the Service range but far above what the API server allocates here.
UNUSED_POD_ADDRESS = "198.18.250.1"
UNUSED_SERVICE_ADDRESS = "198.19.250.1"


@pytest.fixture
def local_routes(cluster: Cluster) -> None:
    if not cluster.local:
        pytest.skip("only the hack/ cluster installs routes on this machine")
    if os.geteuid() != 0:
        pytest.skip("routes are installed only when the cluster runs as root")


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def connect_error(address: str, timeout: float) -> tuple[int | None, float]:
    """The errno of a TCP connect to address:5432 and how long it took to fail."""
    began = time.monotonic()
    with socket.socket() as client:
        client.settimeout(timeout)
        try:
            client.connect((address, 5432))
        except TimeoutError:
            return None, time.monotonic() - began
        except OSError as error:
            return error.errno, time.monotonic() - began
    raise AssertionError(f"something answered at {address}:5432")


def test_a_packet_to_an_unused_pod_address_is_refused_locally(local_routes: None) -> None:
    found = ip("route", "get", UNUSED_POD_ADDRESS)
    assert found.returncode != 0 and "No route to host" in found.stderr, found
    covering = ip("route", "show", "match", UNUSED_POD_ADDRESS).stdout
    assert f"unreachable {POD_CIDR} proto {ROUTE_PROTOCOL}" in covering, covering
    code, took = connect_error(UNUSED_POD_ADDRESS, timeout=5)
    assert code in (errno.EHOSTUNREACH, errno.ENETUNREACH), f"errno {code} after {took:.1f}s"
    assert took < 1, f"refused only after {took:.1f}s"


def test_an_unused_service_address_ends_on_this_machine(local_routes: None) -> None:
    found = ip("route", "get", UNUSED_SERVICE_ADDRESS)
    assert found.returncode == 0 and f"dev {SERVICE_SINK}" in found.stdout, found
    covering = ip("route", "show", "match", UNUSED_SERVICE_ADDRESS).stdout
    assert f"{SERVICE_CIDR} dev {SERVICE_SINK} proto {ROUTE_PROTOCOL}" in covering, covering
    # The sink is a bridge without ports: the ARP request for the address finds nobody.
    code, took = connect_error(UNUSED_SERVICE_ADDRESS, timeout=15)
    assert code == errno.EHOSTUNREACH, f"errno {code} after {took:.1f}s"
