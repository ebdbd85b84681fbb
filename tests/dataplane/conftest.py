"""Fixtures for the data-plane tests: a real S3 server and local DBInstance members."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.dataplane import BUCKET, LocalServer
from tests.support.kube import Cluster
from tests.support.s3 import SeaweedFS, weed_binary

pytestmark = [pytest.mark.cluster, pytest.mark.dataplane]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/dataplane/" in str(item.path):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.dataplane)


@pytest.fixture(scope="session")
def workroot() -> Iterator[Path]:
    """Under /tmp with mode 755: PostgreSQL runs as `postgres`, which cannot enter pytest's
    root-only temporary directories."""
    if os.geteuid() != 0:
        pytest.fail("data-plane tests run as root (they start PostgreSQL as the postgres user)")
    root = Path(tempfile.mkdtemp(prefix="kuberds-dataplane-"))
    root.chmod(0o755)
    yield root
    if not os.environ.get("KUBERDS_KEEP_DATAPLANE"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3(workroot: Path) -> Iterator[SeaweedFS]:
    weed = weed_binary()
    assert weed is not None, "SeaweedFS is not built: run hack/build-binaries.sh"
    server = SeaweedFS(weed, workroot / "seaweedfs")
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def servers(cluster: Cluster, namespace: str, workroot: Path) -> Iterator[Callable[..., LocalServer]]:
    """Starts LocalServers for the test and stops every one of them afterwards."""
    started: list[LocalServer] = []

    def start(name: str, s3: SeaweedFS | None, **kwargs) -> LocalServer:
        # Short paths: a Unix socket path may not exceed 107 bytes.
        server = LocalServer(cluster, namespace, name, Path(tempfile.mkdtemp(prefix="s", dir=workroot)), s3, **kwargs)
        started.append(server.__enter__())
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)
