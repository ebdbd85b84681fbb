"""What the e2e suite and the e2e benchmark stand on, as plain functions: the cluster (the
local one with real nodes, or any kubeconfig), kuberds installed by its Helm chart, an S3
server in the cluster, and a namespace with a client pod. e2e/conftest.py wraps them in
session fixtures; bench/e2e.py calls them directly.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from hack.localcluster.layout import default_layout
from tests.support.chart import CHART, helm_path
from tests.support.kube import ROOT, Cluster, external_kubectl, local_kubectl, wait_for
from tests.support.s3 import self_signed_certificate

from e2e.manifests import BUCKET, CLIENT, client_pod, s3_credentials, s3_server
from e2e.support import E2E, OPERATOR_NAMESPACE, RELEASE

VERSION = "0.1.0"
TARGETS = ("operator", "postgres", "memcached", "redis", "s3")
IMAGES = {target: f"docker.io/kuberds/{target}:{VERSION}" for target in TARGETS}
S3_NAMESPACE = "kuberds-e2e-s3"
# Storage autoscaling in seconds, not RDS's minutes and hours; no trend (a test fills a volume in
# seconds, which the 7-hour prediction would turn into one growth straight to maxSize).
STORAGE_AUTOSCALING = {"lowSeconds": 10, "cooldownSeconds": 40, "growthFloor": "256Mi", "horizonSeconds": 0,
                       "checkSeconds": 2}  # fmt: skip


class NoRealNodes(RuntimeError):
    """The local cluster runs, but without the real nodes the suite needs."""


def hack(*args: str) -> int:
    return subprocess.run([sys.executable, *args], cwd=ROOT, check=False).returncode


def given_cluster(kubeconfig: str) -> Cluster:
    """Another cluster (kind, k3d, …): its nodes must already have the images."""
    return Cluster(Path(kubeconfig).expanduser(), external_kubectl(), local=False)


def local_cluster() -> tuple[Cluster, bool]:
    """The local cluster with its real nodes, started if none runs, with the images built and
    loaded into the nodes; and whether it was started here (then the caller stops it)."""
    layout = default_layout()
    started = hack("hack/cluster.py", "status") != 0
    if started and hack("hack/cluster.py", "up", "--real-nodes") != 0:
        raise RuntimeError("hack/cluster.py up --real-nodes failed")
    cluster = Cluster(layout.kubeconfig, local_kubectl(), local=True)
    real = cluster.kubectl("get", "nodes", "-l", "kuberds.io/node-type=real", "-o", "name").stdout.split()
    if len(real) < 2:
        raise NoRealNodes("the running local cluster has no real nodes: `make cluster-down` first")
    if hack("hack/images.py", "all") != 0:
        raise RuntimeError("hack/images.py all (build and load the images) failed")
    return cluster, started


def stop_local_cluster() -> None:
    hack("hack/cluster.py", "down")


def install_kuberds(cluster: Cluster) -> None:
    """kuberds as a user installs it: the CRDs (kubectl, as the README's install and upgrade
    paths: current even on a reused cluster, since Helm never upgrades them), then the Helm
    chart, the operator in the cluster."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "crd", "-l", "app.kubernetes.io/part-of=kuberds", "--for=condition=Established",
                    "--timeout=60s")  # fmt: skip
    install = [helm_path(), f"--kubeconfig={cluster.kubeconfig}", "upgrade", "--install", RELEASE, str(CHART),
               "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout=5m",
               "--set", "verbose=true", "--set", f"image.tag={VERSION}", "--set", "argocd.customizations.enabled=true",
               *(f"--set=storageAutoscaling.{key}={value}" for key, value in STORAGE_AUTOSCALING.items())]  # fmt: skip
    result = subprocess.run(install, capture_output=True, text=True, timeout=400)
    if result.returncode != 0:
        raise RuntimeError(f"helm install failed: {result.stderr}\n{result.stdout}")


def uninstall_kuberds(cluster: Cluster) -> None:
    subprocess.run([helm_path(), f"--kubeconfig={cluster.kubeconfig}", "uninstall", RELEASE,
                    "--namespace", OPERATOR_NAMESPACE, "--wait"], capture_output=True, timeout=300)  # fmt: skip


def start_s3(cluster: Cluster, workdir: Path) -> str:
    """SeaweedFS in the cluster, over TLS, with the suite's bucket; returns its certificate
    (self-signed: the CA the servers verify the store with). A kept server keeps its own."""
    s3 = E2E(cluster, S3_NAMESPACE)
    s3.kubectl("create", "namespace", S3_NAMESPACE, check=False)
    kept = s3.get("secret", "s3-tls") is not None and _lasts(s3.secret_value("s3-tls", "tls.crt"), days=2)
    if kept:
        certificate, key = s3.secret_value("s3-tls", "tls.crt"), s3.secret_value("s3-tls", "tls.key")
    else:
        names = [f"DNS:s3.{S3_NAMESPACE}.svc", f"DNS:s3.{S3_NAMESPACE}.svc.cluster.local"]
        certificate, key = (path.read_text() for path in self_signed_certificate(workdir, names))
    s3.apply(*s3_server(S3_NAMESPACE, IMAGES["s3"], certificate, key))
    if not kept:  # a kept server read its old certificate at start
        s3.kubectl("rollout", "restart", "deploy/s3", "-n", S3_NAMESPACE)
    s3.kubectl("rollout", "status", "deploy/s3", "-n", S3_NAMESPACE, "--timeout=180s", timeout=200)

    def bucket_created() -> bool:
        shell = s3.kubectl("exec", "-i", "-n", S3_NAMESPACE, "deploy/s3", "--", "weed", "shell",
                           "-master=localhost:9333", input=f"s3.bucket.create -name {BUCKET}\ns3.bucket.list\n",
                           check=False)  # fmt: skip
        created = shell.returncode == 0 or "already exists" in shell.stdout + shell.stderr  # a kept server
        return created and BUCKET in shell.stdout

    wait_for(bucket_created, timeout=90, interval=3, what=f"bucket {BUCKET} in the in-cluster S3 server")
    return certificate


def _lasts(certificate: str, days: int) -> bool:
    expires = x509.load_pem_x509_certificate(certificate.encode()).not_valid_after_utc
    return expires - datetime.now(UTC) > timedelta(days=days)


def prepare_namespace(cluster: Cluster, namespace: str, s3_ca: str, wait: bool = True) -> E2E:
    """A namespace with the S3 credentials and CA, and the client pod every connection starts
    from (ready, unless `wait` is false)."""
    e2e = E2E(cluster, namespace)

    def not_terminating() -> bool:  # an earlier run deletes its namespace without waiting
        found = e2e.get("namespace", namespace)
        return found is None or found["status"].get("phase") != "Terminating"

    wait_for(not_terminating, timeout=300, interval=2, what=f"namespace {namespace} of an earlier run gone")
    e2e.kubectl("create", "namespace", namespace, check=False)
    e2e.apply(*s3_credentials(namespace, s3_ca), *client_pod(namespace, IMAGES["postgres"],
                                                             (ROOT / "e2e" / "writer.py").read_text()))  # fmt: skip
    if wait:
        ready = e2e.kubectl("wait", "pod", CLIENT, "-n", namespace, "--for=condition=Ready", "--timeout=180s",
                            timeout=200, check=False)  # fmt: skip
        if ready.returncode != 0:
            raise AssertionError(f"the client pod in {namespace} is not Ready after 180 s\n{e2e.diagnostics()}")
    return e2e


def finish_namespace(e2e: E2E, keep: bool) -> None:
    """At the end of a namespace's scenarios: their figures again, then the namespace goes
    (unless kept)."""
    print(f"\n==> e2e figures ({e2e.namespace})")
    for name, value in e2e.figures.items():
        print(f"    {name}: {value}")
    if not keep:
        release_and_delete(e2e)


def release_and_delete(e2e: E2E) -> None:
    """Lets the namespace's servers go (protection off, no final snapshot) and deletes it."""
    for kind in ("dbinstance", "dbcluster"):
        for item in e2e.items(kind):
            e2e.patch(kind, item["metadata"]["name"], {"spec": {"deletionProtection": False,
                                                                "skipFinalSnapshot": True}})  # fmt: skip
    e2e.kubectl("delete", "readreplica,dbinstance,dbcluster,dbsnapshot", "--all", "-n", e2e.namespace, "--wait=true",
                "--timeout=300s", check=False, timeout=320)  # fmt: skip
    e2e.kubectl("delete", "namespace", e2e.namespace, "--wait=false", check=False)
