"""Session fixtures of the whole-cluster suite: a cluster with real nodes, kuberds installed
by its Helm chart, an S3 server in the cluster, and a namespace with a client pod.

    make e2e                                   # the local cluster: hack/cluster.py up --real-nodes,
                                               # images built and loaded (hack/images.py all)
    .venv/bin/pytest e2e --e2e-kubeconfig=~/.kube/config   # any cluster that has the images

Against another cluster (kind, k3d) load the images first (`python3 hack/images.py build`,
then `kind load docker-image docker.io/kuberds/{operator,postgres,s3}:0.1.0`); its default
StorageClass must provision volumes, and Multi-AZ needs two schedulable nodes with distinct
`topology.kubernetes.io/zone` labels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.chart import CHART, helm_path
from tests.support.kube import ROOT, Cluster, external_kubectl, load_localcluster, local_kubectl, wait_for
from tests.support.s3 import self_signed_certificate

from e2e.manifests import BUCKET, CLIENT, client_pod, s3_credentials, s3_server
from e2e.support import E2E, OPERATOR_NAMESPACE, RELEASE

VERSION = "0.1.0"
IMAGES = {target: f"docker.io/kuberds/{target}:{VERSION}" for target in ("operator", "postgres", "s3")}
S3_NAMESPACE, NAMESPACE = "kuberds-e2e-s3", "kuberds-e2e"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e-kubeconfig", default=os.environ.get("KUBERDS_E2E_KUBECONFIG"),
                     help="run against this cluster, not the local one (its nodes must have the images)")  # fmt: skip
    parser.addoption("--e2e-keep", action="store_true", default=bool(os.environ.get("KUBERDS_E2E_KEEP")),
                     help="leave the cluster, kuberds and the test objects in place afterwards")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


def hack(*args: str) -> int:
    return subprocess.run([sys.executable, *args], cwd=ROOT, check=False).returncode


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    given = request.config.getoption("--e2e-kubeconfig")
    if given:
        yield Cluster(Path(given).expanduser(), external_kubectl(), local=False)
        return
    layout = load_localcluster().default_layout()
    started = hack("hack/cluster.py", "status") != 0
    if started:
        assert hack("hack/cluster.py", "up", "--real-nodes") == 0, "hack/cluster.py up --real-nodes failed"
    cluster = Cluster(layout.kubeconfig, local_kubectl(), local=True)
    real = cluster.kubectl("get", "nodes", "-l", "kuberds.io/node-type=real", "-o", "name").stdout.split()
    if len(real) < 2:
        pytest.exit("the running local cluster has no real nodes: `make cluster-down`, then `make e2e`", 2)
    assert hack("hack/images.py", "all") == 0, "hack/images.py all (build and load the images) failed"
    try:
        yield cluster
    finally:
        if started and not request.config.getoption("--e2e-keep"):
            hack("hack/cluster.py", "down")


@pytest.fixture(scope="session")
def kuberds(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    """kuberds as a user installs it: the Helm chart, the operator in the cluster."""
    install = [helm_path(), f"--kubeconfig={cluster.kubeconfig}", "upgrade", "--install", RELEASE, str(CHART),
               "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout=5m",
               "--set", "verbose=true", "--set", f"image.tag={VERSION}"]  # fmt: skip
    result = subprocess.run(install, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, f"helm install failed: {result.stderr}\n{result.stdout}"
    yield
    if not request.config.getoption("--e2e-keep"):
        subprocess.run([helm_path(), f"--kubeconfig={cluster.kubeconfig}", "uninstall", RELEASE,
                        "--namespace", OPERATOR_NAMESPACE, "--wait"], capture_output=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="session")
def s3(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SeaweedFS in the cluster, over TLS, with the suite's bucket; returns its namespace."""
    s3 = E2E(cluster, S3_NAMESPACE)
    s3.kubectl("create", "namespace", S3_NAMESPACE, check=False)
    names = [f"DNS:s3.{S3_NAMESPACE}.svc", f"DNS:s3.{S3_NAMESPACE}.svc.cluster.local"]
    certificate, key = self_signed_certificate(tmp_path_factory.mktemp("s3"), names)
    s3.apply(*s3_server(S3_NAMESPACE, IMAGES["s3"], certificate.read_text(), key.read_text()))
    s3.kubectl("rollout", "status", "deploy/s3", "-n", S3_NAMESPACE, "--timeout=180s", timeout=200)

    def bucket_created() -> bool:
        shell = s3.kubectl("exec", "-i", "-n", S3_NAMESPACE, "deploy/s3", "--", "weed", "shell",
                           "-master=localhost:9333", input=f"s3.bucket.create -name {BUCKET}\ns3.bucket.list\n",
                           check=False)  # fmt: skip
        created = shell.returncode == 0 or "already exists" in shell.stdout + shell.stderr  # a kept server
        return created and BUCKET in shell.stdout

    wait_for(bucket_created, timeout=90, interval=3, what=f"bucket {BUCKET} in the in-cluster S3 server")
    return S3_NAMESPACE


@pytest.fixture(scope="session")
def e2e(cluster: Cluster, kuberds: None, s3: str, request: pytest.FixtureRequest) -> Iterator[E2E]:
    """The suite's namespace: S3 credentials, and the client pod every connection starts from."""
    e2e = E2E(cluster, NAMESPACE)
    e2e.kubectl("create", "namespace", NAMESPACE, check=False)
    e2e.apply(
        s3_credentials(NAMESPACE), *client_pod(NAMESPACE, IMAGES["postgres"], (ROOT / "e2e" / "writer.py").read_text())
    )
    e2e.kubectl("wait", "pod", CLIENT, "-n", NAMESPACE, "--for=condition=Ready", "--timeout=180s", timeout=200)
    yield e2e
    print("\n==> e2e figures")
    for name, value in e2e.figures.items():
        print(f"    {name}: {value}")
    if not request.config.getoption("--e2e-keep"):
        release_and_delete(e2e)


def release_and_delete(e2e: E2E) -> None:
    """Lets the suite's servers go (protection off, no final snapshot) and deletes the namespace."""
    for item in e2e.items("dbinstance"):
        e2e.patch("dbinstance", item["metadata"]["name"], {"spec": {"deletionProtection": False,
                                                                     "skipFinalSnapshot": True}})  # fmt: skip
    e2e.kubectl("delete", "dbinstance,dbsnapshot", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=300s",
                check=False, timeout=320)  # fmt: skip
    e2e.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call" and "e2e" in item.funcargs:
        e2e: E2E = item.funcargs["e2e"]
        report.sections.append(("kuberds diagnostics", e2e.diagnostics()))
