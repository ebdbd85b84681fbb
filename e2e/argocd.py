"""A real Argo CD against the local cluster, for the GitOps scenario: its application
controller and repo server (built from its Go module by hack/) as processes on this machine,
a Redis for their cache, and a git repository on disk as the source of truth.

Argo CD's API server and UI are not needed to sync: Applications are objects, read and written
through the Kubernetes API as `kubectl` and Argo CD's own controller do. The in-cluster
destination (https://kubernetes.default.svc) is the cluster of the controller's kubeconfig
(ARGOCD_FAKE_IN_CLUSTER, as Argo CD's own local development runs it).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from tests.support.argocd import component
from tests.support.kube import ROOT, Cluster, free_port, wait_for

NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"


def crds_dir() -> Path:
    """Argo CD's CRDs, from the module the binary was built from (the Go module cache)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    module, cwd = "github.com/argoproj/argo-cd/v3", ROOT / "hack" / "tools" / "argocd"
    out = subprocess.run(["go", "list", "-m", "-json", module], cwd=cwd,
                         capture_output=True, text=True, check=True, env=env)  # fmt: skip
    return Path(json.loads(out.stdout)["Dir"]) / "manifests" / "crds"


class GitRepo:
    """A bare repository (what Argo CD clones, by file:// URL) and a working copy to commit from."""

    def __init__(self, root: Path):
        self.bare, self.work = root / "source.git", root / "work"
        self.url = f"file://{self.bare}"
        self._git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        self._git(root, "clone", "--quiet", str(self.bare), str(self.work))

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        identity = ["-c", "user.name=kuberds e2e", "-c", "user.email=e2e@kuberds.invalid"]
        return subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout

    def commit(self, files: dict[str, str | None], message: str) -> str:
        """Writes (None: removes) files, commits and pushes; returns the commit's sha."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                self._git(self.work, "rm", "--quiet", name)
            else:
                path.write_text(text)
                self._git(self.work, "add", name)
        self._git(self.work, "commit", "--quiet", "-m", message)
        self._git(self.work, "push", "--quiet", "origin", "HEAD:main")
        return self._git(self.work, "rev-parse", "HEAD").strip()


class ArgoCD:
    def __init__(self, cluster: Cluster, workdir: Path):
        self.cluster, self.workdir = cluster, workdir
        self.processes: list[subprocess.Popen] = []

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.cluster.kubectl(*args, input=input, check=check)

    def install(self, customizations: dict[str, str]) -> None:
        """Argo CD's CRDs and settings as its install manifests make them (argocd-cm and
        argocd-secret labelled part-of=argocd: Argo CD reads only those), the default project,
        and kuberds' health checks and actions merged into argocd-cm."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds_dir() / "application-crd.yaml"),
                     "-f", str(crds_dir() / "appproject-crd.yaml"))  # fmt: skip
        wait_for(lambda: self.kubectl("wait", "crd", "applications.argoproj.io", "appprojects.argoproj.io",
                                      "--for=condition=Established", "--timeout=10s", check=False).returncode == 0,
                 timeout=60, what="Argo CD's CRDs established")  # fmt: skip
        self.kubectl("create", "namespace", NAMESPACE, check=False)
        part_of = {"app.kubernetes.io/part-of": "argocd"}
        objects = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", "namespace": NAMESPACE,
                                                                  "labels": part_of}, "data": {}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", "namespace": NAMESPACE,
                                                               "labels": part_of},
             "stringData": {"server.secretkey": secrets.token_urlsafe(32)}},
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
             "metadata": {"name": "default", "namespace": NAMESPACE},
             "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                      "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
        ]  # fmt: skip
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
        # What the README tells users to run (there through kubectl patch --type merge).
        self.kubectl("patch", "configmap", "argocd-cm", "-n", NAMESPACE, "--type", "merge",
                     "-p", json.dumps({"data": customizations}))  # fmt: skip

    def start(self) -> None:
        redis_port, repo_port = free_port(), free_port()
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        env = {"KUBECONFIG": str(self.cluster.kubeconfig), "ARGOCD_FAKE_IN_CLUSTER": "true",
               "ARGOCD_GPG_ENABLED": "false", "ARGOCD_TLS_DATA_PATH": str(self.workdir / "tls"),
               "ARGOCD_SSH_DATA_PATH": str(self.workdir / "ssh"), "TMPDIR": str(self.workdir)}  # fmt: skip
        for directory in ("tls", "ssh"):
            (self.workdir / directory).mkdir(exist_ok=True)
        self._spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no"], logs / "redis.log")  # fmt: skip
        redis = f"127.0.0.1:{redis_port}"
        self.processes.append(component(
            "argocd-repo-server", "--port", str(repo_port), "--metrics-port", str(free_port()), "--redis", redis,
            "--loglevel", "info", env=env, stdout=open(logs / "repo-server.log", "w"), stderr=subprocess.STDOUT))  # noqa: SIM115  # fmt: skip
        self.processes.append(component(
            "argocd-application-controller", "--namespace", NAMESPACE, "--repo-server", f"127.0.0.1:{repo_port}",
            "--redis", redis, "--metrics-port", str(free_port()), "--loglevel", "info", "--status-processors", "4",
            # How often sources are looked at without a webhook (3 min and jitter by default);
            # resource health kept in the Application, as the UI shows it per resource.
            "--app-resync", "10", "--app-resync-jitter", "0", "--persist-resource-health",
            "--operation-processors", "2", env=env, stdout=open(logs / "application-controller.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT))  # fmt: skip
        time.sleep(1)
        for process in self.processes:
            assert process.poll() is None, f"{process.args} exited: see {logs}"

    def _spawn(self, argv: list[str], log: Path) -> None:
        self.processes.append(subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT))  # noqa: SIM115

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def application(self, name: str, repo: str, path: str, namespace: str) -> dict:
        return {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"project": "default",
                     "source": {"repoURL": repo, "path": path, "targetRevision": "main"},
                     "destination": {"server": IN_CLUSTER, "namespace": namespace},
                     # allowEmpty: a sync that prunes the last resource is done, not skipped.
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True, "allowEmpty": True}}},
        }  # fmt: skip

    def app(self, name: str) -> dict:
        out = self.kubectl("get", "application", name, "-n", NAMESPACE, "-o", "json").stdout
        return json.loads(out)

    def refresh(self, name: str) -> None:
        """What a git webhook does: Argo CD looks at the source now."""
        self.kubectl("annotate", "application", name, "-n", NAMESPACE, "argocd.argoproj.io/refresh=normal",
                     "--overwrite")  # fmt: skip
