"""Argo CD as the tests run it: the binary hack/ builds from its Go module (one multi-call
binary; ARGOCD_BINARY_NAME picks the component), the chart's health checks and actions as an
argocd-cm, and Argo CD's own offline evaluation of them (`argocd admin settings
resource-overrides`: the gopher-lua VM and sandbox the application controller uses)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.support.chart import documents
from tests.support.kube import ROOT, local_kubectl

CUSTOMIZATIONS = ROOT / "charts" / "kuberds" / "argocd"
FIXTURES = CUSTOMIZATIONS / "tests"


def argocd_path() -> str:
    built = Path(local_kubectl()).with_name("argocd")
    if not built.exists():
        raise RuntimeError(f"{built} missing: run `make binaries` (hack/build-binaries.sh builds Argo CD)")
    return str(built)


def component(name: str, *args: str, **popen: object) -> subprocess.Popen:
    """An Argo CD component (argocd-application-controller, argocd-repo-server) as a process."""
    env = {**os.environ, "ARGOCD_BINARY_NAME": name, **popen.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.Popen([argocd_path(), *args], env=env, **popen)  # type: ignore[call-overload]


def customizations_data() -> dict[str, str]:
    """The argocd-cm keys the chart installs (argocd.customizations.enabled)."""
    docs = documents("kuberds", "kuberds-system", "argocd.customizations.enabled=true",
                     flags=("--show-only", "templates/argocd-customizations.yaml"))  # fmt: skip
    return docs[0]["data"]


def argocd_cm_file(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                                    "data": customizations_data()}))  # fmt: skip
    return path


def admin(*args: str, argocd_cm: Path) -> str:
    """`argocd admin settings resource-overrides ARGS`: what Argo CD makes of an object."""
    result = subprocess.run([argocd_path(), "admin", "settings", "resource-overrides", *args,
                             f"--argocd-cm-path={argocd_cm}"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "ARGOCD_BINARY_NAME": "argocd"})  # fmt: skip
    if result.returncode != 0:
        errors = [json.loads(line).get("msg", line) for line in result.stderr.splitlines() if line.startswith("{")]
        raise AssertionError(f"argocd admin {' '.join(args)} failed: {errors or result.stderr}")
    return result.stdout


def health(fixture: Path, argocd_cm: Path) -> tuple[str, str]:
    """(status, message) Argo CD gives the object in `fixture`."""
    lines = dict(line.split(": ", 1) for line in admin("health", str(fixture), argocd_cm=argocd_cm).splitlines()
                 if ": " in line)  # fmt: skip
    return lines.get("STATUS", ""), lines.get("MESSAGE", "")
