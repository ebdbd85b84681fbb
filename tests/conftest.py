"""Session-wide fixtures: a real Kubernetes API server for tests marked `cluster`.

By default the session brings up the hack/ control plane once (or reuses one that is
already running, and then leaves it running). Give `--kubeconfig PATH` or set
KUBERDS_TEST_KUBECONFIG to run the same tests against another cluster (kind, k3d).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from hack.localcluster.layout import default_layout

from tests.support.kube import ROOT, Cluster, external_kubectl, installed_operators, local_kubectl, wait_for
from tests.support.timing import pytest_runtest_protocol, pytest_terminal_summary  # noqa: F401 (hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=os.environ.get("KUBERDS_TEST_KUBECONFIG"),
        help="run cluster tests against this cluster instead of starting the local one",
    )
    parser.addoption(
        "--keep-cluster",
        action="store_true",
        default=bool(os.environ.get("KUBERDS_KEEP_CLUSTER")),
        help="leave the local cluster running after the session (faster reruns)",
    )


def run_cluster_script(command: str) -> subprocess.CompletedProcess:
    # Progress goes straight to the terminal (pytest -s) or to the captured log.
    return subprocess.run([sys.executable, str(ROOT / "hack" / "cluster.py"), command], check=False)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    given = request.config.getoption("--kubeconfig")
    if given:
        cluster = Cluster(Path(given), external_kubectl(), local=False)
        yield prepared(cluster)
        return

    layout = default_layout()
    already_running = run_cluster_script("status").returncode == 0
    if not already_running:
        assert run_cluster_script("up").returncode == 0, "hack/cluster.py up failed (see output)"
    cluster = Cluster(layout.kubeconfig, local_kubectl(), local=True)
    try:
        yield prepared(cluster)
    finally:
        if not already_running and not request.config.getoption("--keep-cluster"):
            run_cluster_script("down")


def prepared(cluster: Cluster) -> Cluster:
    """Installs kuberds' CRDs (and admission policies) and waits until they serve. The tests
    run their own operator: a cluster that has one installed (`make up`) is refused."""
    if found := installed_operators(cluster):
        pytest.exit(f"a kuberds operator is installed in this cluster ({', '.join(found)}) and would fight the "
                    "tests' own: `make cluster-down` (or `helm uninstall`) first", 2)  # fmt: skip
    real = cluster.kubectl("get", "nodes", "-l", "kuberds.io/node-type=real", "-o", "name").stdout.split()
    if cluster.local and real:
        pytest.exit("the local cluster runs real nodes (`make up`); the tests need kwok's: `make cluster-down`", 2)
    manifests = sorted((ROOT / "crds").glob("*.yaml"))
    if manifests:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", *[f"-f={m}" for m in manifests])
        cluster.kubectl("wait", "crd", "-l", "app.kubernetes.io/part-of=kuberds",
                        "--for=condition=Established", "--timeout=60s")  # fmt: skip
    return cluster


@pytest.fixture(scope="session")
def api(cluster: Cluster) -> kubernetes.client.ApiClient:
    return cluster.client()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (pods and all)."""
    core = kubernetes.client.CoreV1Api(api)
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"kuberds.io/test": "true"}}})
    # Pods are refused until the namespace's default ServiceAccount exists.
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30, what=f"ServiceAccount default in {name}")  # fmt: skip
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
