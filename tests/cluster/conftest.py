"""The kuberds operator, run as its own process against the test cluster, once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.chart import documents
from tests.support.dbinstances import GROUP, VERSION, DBInstances
from tests.support.kube import Cluster, free_port, token_kubeconfig
from tests.support.recorder import recording

FINAL_SNAPSHOT_TIMEOUT = 8  # seconds: short, so the timeout path is observable in a test


class RunningOperator:
    def __init__(self, process: subprocess.Popen, log: Path, metrics_port: int):
        self.process, self.log, self.metrics_port = process, log, metrics_port

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


OPERATOR_NAMESPACE = "kuberds-system"
RELEASE = "kuberds"


def install_chart_rbac(cluster: Cluster) -> dict:
    """The chart's ServiceAccount, ClusterRole and binding, as `helm install` would make them."""
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    docs = [d for d in documents(RELEASE, OPERATOR_NAMESPACE) if d["kind"] in wanted]
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(docs))
    return next(d for d in docs if d["kind"] == "ServiceAccount")


def service_account_kubeconfig(cluster: Cluster, account: dict, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount, with nothing else."""
    return token_kubeconfig(cluster, account["metadata"]["name"], OPERATOR_NAMESPACE, path, "operator")


STORAGE_TIMINGS = {"KUBERDS_STORAGE_LOW_SECONDS": "4", "KUBERDS_STORAGE_COOLDOWN_SECONDS": "20",
                   "KUBERDS_STORAGE_GROWTH_FLOOR": "1Gi", "KUBERDS_STORAGE_CHECK_SECONDS": "1",
                   "KUBERDS_STORAGE_HORIZON_SECONDS": "0"}  # fmt: skip


@pytest.fixture(scope="package")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningOperator]:
    """The operator, authenticated as the chart's ServiceAccount: every cluster test then
    also proves that the chart's least-privilege RBAC is enough. It stops once the control-plane
    tests are done: the data-plane tests that follow in the same run play the operator's part
    themselves (a DBSnapshot of a server that is no DBInstance, which it would mark Failed)."""
    workdir = tmp_path_factory.mktemp("operator")
    log = workdir / "operator.log"
    kubeconfig = service_account_kubeconfig(cluster, install_chart_rbac(cluster), workdir / "kubeconfig")
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBERDS_FINAL_SNAPSHOT_TIMEOUT_SECONDS": str(FINAL_SNAPSHOT_TIMEOUT),
        "KUBERDS_NAMESPACE": OPERATOR_NAMESPACE,
        # Conditions fixed by a test are looked at again within seconds (the default is 30 s).
        "KUBERDS_RETRY_SECONDS": "5",
        # Storage autoscaling in seconds rather than RDS's minutes and hours.
        **STORAGE_TIMINGS,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kuberds", "operator", f"--metrics-port={metrics_port}",
             f"--health-port={health_port}", *(["--verbose"] if os.environ.get("KUBERDS_TEST_VERBOSE") else [])],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = RunningOperator(process, log, metrics_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"operator exited:\n{running.log_tail()}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        raise AssertionError(f"operator not healthy in 60s:\n{running.log_tail()}")
    try:
        with recording(cluster):  # KUBERDS_RECORD_OBJECTS=DIR: the Argo CD health checks' fixtures
            yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        print(f"operator log: {log}")


@pytest.fixture
def dbi(api, namespace: str, operator: RunningOperator) -> Iterator[DBInstances]:
    """DBInstances of a fresh namespace, with the operator running; let go without final
    snapshots afterwards (no data plane runs in this tier)."""
    client = DBInstances(api, namespace)
    yield client
    for item in client.objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "dbinstances")["items"]:
        client.release(item["metadata"]["name"])
