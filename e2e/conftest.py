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

import importlib
import os
from collections.abc import Iterator

import pytest
from tests.support.kube import Cluster
from tests.support.recorder import recording
from tests.support.timing import pytest_runtest_protocol, pytest_terminal_summary  # noqa: F401 (hooks)

from e2e import environment
from e2e.support import E2E

NAMESPACE = "kuberds-e2e"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e-kubeconfig", default=os.environ.get("KUBERDS_E2E_KUBECONFIG"),
                     help="run against this cluster, not the local one (its nodes must have the images)")  # fmt: skip
    parser.addoption("--e2e-keep", action="store_true", default=bool(os.environ.get("KUBERDS_E2E_KEEP")),
                     help="leave the cluster, kuberds and the test objects in place afterwards")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)
    # Modules of their own namespace run last (those with a head start first: their servers
    # booted meanwhile), after the shared namespace's scenarios have freed their pods' CPU.
    items.sort(key=lambda item: RUN_LAST.index(item.module.__name__) + 1 if item.module.__name__ in RUN_LAST
               else 0)  # fmt: skip


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    given = request.config.getoption("--e2e-kubeconfig")
    if given:
        yield environment.given_cluster(given)
        return
    try:
        cluster, started = environment.local_cluster()
    except environment.NoRealNodes as error:
        pytest.exit(str(error), 2)
    try:
        yield cluster
    finally:
        if started and not request.config.getoption("--e2e-keep"):
            environment.stop_local_cluster()


@pytest.fixture(scope="session")
def kuberds(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    environment.install_kuberds(cluster)
    with recording(cluster):  # KUBERDS_RECORD_OBJECTS=DIR: the health checks' fixtures
        yield
    if not request.config.getoption("--e2e-keep"):
        environment.uninstall_kuberds(cluster)


@pytest.fixture(scope="session")
def s3(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The in-cluster S3 server; its certificate (the CA the servers verify it with)."""
    return environment.start_s3(cluster, tmp_path_factory.mktemp("s3"))


# Modules with a namespace of their own, whose servers the session starts early: they boot
# and take their first backups while the scenarios before them run (the CI budget).
HEAD_START = ("e2e.test_replica", "e2e.test_storage")
# A DBCluster's three pods would not fit beside the others (CPU requests): it boots in seconds
# once their namespaces are gone, so it gets no head start.
RUN_LAST = (
    *HEAD_START,
    "e2e.test_dbcluster",
    "e2e.test_cache",
    "e2e.test_mariadb",
    "e2e.test_gitops",
    "e2e.test_monitoring",
)


@pytest.fixture(scope="session")
def e2e(cluster: Cluster, kuberds: None, s3: str, request: pytest.FixtureRequest) -> Iterator[E2E]:
    """The suite's namespace: S3 credentials and CA, and the client pod every connection starts from."""
    e2e = environment.prepare_namespace(cluster, NAMESPACE, s3)
    collected = {item.module.__name__ for item in request.session.items}
    for name in HEAD_START:
        if name in collected:
            module = importlib.import_module(name)
            environment.prepare_namespace(cluster, module.NAMESPACE, s3, wait=False).apply(*module.servers())
    yield e2e
    environment.finish_namespace(e2e, keep=request.config.getoption("--e2e-keep"))


@pytest.fixture(scope="module")
def own_namespace(cluster: Cluster, kuberds: None, s3: str, request: pytest.FixtureRequest) -> Iterator[E2E]:
    """A module's own namespace (its NAMESPACE) with its servers (its servers()): already
    there when the session gave them a head start."""
    module = request.module
    e2e = environment.prepare_namespace(cluster, module.NAMESPACE, s3)
    servers = module.servers()
    if servers:  # a module whose servers come from elsewhere (git, for the GitOps one) has none
        e2e.apply(*servers)
    yield e2e
    environment.finish_namespace(e2e, keep=request.config.getoption("--e2e-keep"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call" and "e2e" in item.funcargs:
        e2e: E2E = item.funcargs["e2e"]
        report.sections.append(("kuberds diagnostics", e2e.diagnostics()))
