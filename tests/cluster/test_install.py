"""Every install path the README documents, each on a fresh cluster of its own (kwok nodes
only, beside the session's cluster): the CRDs with kubectl and then Helm, Helm alone, and a
later upgrade (the new CRDs with kubectl, then `helm upgrade`).

The CRDs and the deletion-protection policy are the chart's crds/: Helm creates them when
absent and skips them when present, never upgrades or deletes them, so they have one owner
whichever way they were first installed. The operator's pod lands on a kwok node, where
nothing runs it: no second operator works beside the session's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.chart import CHART, helm_path
from tests.support.kube import ROOT, Cluster, local_kubectl, wait_for

pytestmark = pytest.mark.cluster

RELEASE, NAMESPACE = "kuberds", "kuberds-system"  # as the README writes them
POLICY = "kuberds-deletion-protection"
PORT_OFFSET = "300"  # beside the session's cluster (and a `make up` one)


@pytest.fixture
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A new local cluster with nothing of kuberds in it, stopped afterwards."""
    if request.config.getoption("--kubeconfig"):
        pytest.skip("starts clusters of its own with hack/cluster.py")
    env = {**os.environ, "KUBERDS_CLUSTER_DIR": str(tmp_path / "cluster"), "KUBERDS_CLUSTER_PORT_OFFSET": PORT_OFFSET}
    script = [sys.executable, str(ROOT / "hack" / "cluster.py")]
    up = subprocess.run([*script, "up"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        cluster = Cluster(tmp_path / "cluster" / "kubeconfig", local_kubectl(), local=True)
        assert not cluster.kubectl("get", "crd", "-o", "name").stdout.strip()
        yield cluster
    finally:
        down = subprocess.run([*script, "down"], env=env, capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr


def helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    command = [helm_path(), f"--kubeconfig={cluster.kubeconfig}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}{result.stdout}"
    return result


def helm_install(cluster: Cluster, chart: Path = CHART) -> None:
    """The README's command."""
    helm(cluster, "install", RELEASE, str(chart), "-n", NAMESPACE, "--create-namespace")


def release(cluster: Cluster) -> dict:
    return json.loads(helm(cluster, "status", RELEASE, "-n", NAMESPACE, "-o", "json").stdout)


def get(cluster: Cluster, *what: str) -> dict:
    return json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)


def assert_kuberds_installed(cluster: Cluster) -> None:
    crds = [c for c in get(cluster, "crd")["items"] if c["spec"]["group"] == "kuberds.io"]
    assert len(crds) == 5
    cluster.kubectl("wait", "crd", "-l", "app.kubernetes.io/part-of=kuberds", "--for=condition=Established")
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        get(cluster, kind, POLICY)
    assert release(cluster)["info"]["status"] == "deployed"
    get(cluster, "deployment", RELEASE, "-n", NAMESPACE)


def assert_deletion_is_protected(cluster: Cluster) -> None:
    """The policy works: a protected server cannot be deleted (the policy takes effect
    within moments of its creation)."""
    server = {"apiVersion": "kuberds.io/v1alpha1", "kind": "DBInstance",
              "metadata": {"name": "orders", "namespace": "default"},
              "spec": {"engine": "postgres", "deletionProtection": True}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(server))

    def refused() -> str:
        result = cluster.kubectl("delete", "dbinstance", "orders", "--dry-run=server", check=False)
        return result.stderr if result.returncode != 0 else ""

    assert "has spec.deletionProtection: true" in wait_for(refused, timeout=30, what="the deletion refused")


def test_crds_with_kubectl_then_helm(fresh: Cluster) -> None:
    fresh.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    helm_install(fresh)  # skips the CRDs and the policy: they exist
    assert_kuberds_installed(fresh)
    annotations = get(fresh, "validatingadmissionpolicy", POLICY)["metadata"].get("annotations", {})
    assert "meta.helm.sh/release-name" not in annotations, "the policy stays kubectl's, not the release's"
    assert_deletion_is_protected(fresh)


def test_helm_alone(fresh: Cluster) -> None:
    helm_install(fresh)  # creates the CRDs and the policy from the chart's crds/
    assert_kuberds_installed(fresh)
    assert_deletion_is_protected(fresh)
    helm(fresh, "uninstall", RELEASE, "-n", NAMESPACE, "--wait")
    # As with every chart's crds/: uninstalling leaves them, so users' servers and their
    # deletion protection outlive the operator.
    get(fresh, "crd", "dbinstances.kuberds.io")
    get(fresh, "validatingadmissionpolicy", POLICY)


def next_version(tmp_path: Path) -> tuple[Path, Path]:
    """crds/ and the chart as a later kuberds would ship them: a changed CRD and policy."""
    crds, chart = tmp_path / "crds", tmp_path / "kuberds"
    shutil.copytree(ROOT / "crds", crds)
    shutil.copytree(CHART, chart)
    for path in (crds / "kuberds.io_dbinstances.yaml", crds / f"{POLICY}.yaml"):
        documents = list(yaml.safe_load_all(path.read_text()))
        documents[0]["metadata"]["labels"]["kuberds.io/next"] = "true"
        path.write_text(yaml.safe_dump_all(documents))
    shutil.rmtree(chart / "crds")
    shutil.copytree(crds, chart / "crds")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.1.1", "appVersion": "0.1.1"}))
    return crds, chart


def test_a_later_helm_upgrade_with_the_new_crds_applied_first(fresh: Cluster, tmp_path: Path) -> None:
    helm_install(fresh)  # the CRDs and the policy are now Helm's creations
    crds, chart = next_version(tmp_path)

    def labelled() -> list[bool]:
        return [
            "kuberds.io/next" in get(fresh, *what)["metadata"]["labels"]
            for what in (("crd", "dbinstances.kuberds.io"), ("validatingadmissionpolicy", POLICY))
        ]

    # Helm never upgrades crds/: an upgrade alone leaves the old CRDs and policy.
    helm(fresh, "upgrade", RELEASE, str(chart), "-n", NAMESPACE)
    assert labelled() == [False, False]
    # The README's upgrade: the new CRDs with kubectl first (taking over the fields Helm
    # created), then the chart.
    fresh.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    helm(fresh, "upgrade", RELEASE, str(chart), "-n", NAMESPACE)
    assert labelled() == [True, True]
    status = release(fresh)
    assert status["info"]["status"] == "deployed" and status["version"] == 3
    listed = json.loads(helm(fresh, "list", "-n", NAMESPACE, "-o", "json").stdout)
    assert [r["chart"] for r in listed] == ["kuberds-0.1.1"]
    assert_deletion_is_protected(fresh)
