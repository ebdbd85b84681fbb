"""Rendering the Helm chart (with the helm that hack/ builds, else the one on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.kube import ROOT, local_kubectl

CHART = ROOT / "charts" / "kuberds"


def helm_path() -> str:
    built = Path(local_kubectl()).with_name("helm")
    found = str(built) if built.exists() else shutil.which("helm")
    if not found:
        raise RuntimeError("helm not found: run `make binaries` or put helm on PATH")
    return found


def render(release: str, namespace: str, *sets: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`helm template` with --set values and other flags (--include-crds, --kube-version …)."""
    args = [helm_path(), "template", release, str(CHART), "--namespace", namespace, *flags]
    for value in sets:
        args += ["--set", value]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def documents(release: str, namespace: str, *sets: str, flags: tuple[str, ...] = ()) -> list[dict]:
    result = render(release, namespace, *sets, flags=flags)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]
