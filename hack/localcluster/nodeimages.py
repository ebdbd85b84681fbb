"""The two images every real node needs before its kubelet starts, without a registry: the
pause image (made here from Debian's static catatonit) and the smoke test's Debian image
(made by hack/images.py when podman lacks it); cached as archives and imported into the
nodes' containerd."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

from .layout import HACK, PAUSE_IMAGE, SMOKE_IMAGE, RealNode


def rootfs_layer(files: dict[str, tuple[bytes, int]], directories: list[str]) -> bytes:
    """A reproducible layer tarball (owner root, time 0), so the image digest is stable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def docker_archive(reference: str, layer: bytes, image_config: dict) -> bytes:
    """A one-layer image in `docker save` form, which `ctr images import` names by its tag."""
    config = {
        **image_config,
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    config_json = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_json).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [reference], "Layers": ["layer.tar"]}]).encode()
    return rootfs_layer({"layer.tar": (layer, 0o644), config_name: (config_json, 0o644),
                         "manifest.json": (manifest, 0o644)}, [])  # fmt: skip


def pause_image(catatonit: bytes) -> bytes:
    """The pod sandbox image: Debian's static catatonit in pause mode, as nobody."""
    layer = rootfs_layer({"catatonit": (catatonit, 0o755)}, ["dev", "etc", "proc", "sys"])
    return docker_archive(PAUSE_IMAGE, layer, {"config": {"Entrypoint": ["/catatonit", "-P"], "User": "65535:65535"}})


def image_cache() -> Path:
    root = os.environ.get("KUBERDS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kuberds"
    cache = Path(root) / "images"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def cached_archive(name: str, key: str, make: Callable[[Path], object]) -> Path:
    """<cache>/NAME-KEY.tar, made once per key; older keys of NAME are removed."""
    archive = image_cache() / f"{name}-{key[:12]}.tar"
    if not archive.exists():
        for stale in image_cache().glob(f"{name}-*.tar"):
            stale.unlink()
        partial = archive.with_suffix(".partial")
        make(partial)
        partial.rename(archive)
    return archive


def pause_image_archive() -> Path:
    catatonit = Path(shutil.which("catatonit") or "catatonit").read_bytes()
    return cached_archive(
        "pause", hashlib.sha256(catatonit).hexdigest(), lambda p: p.write_bytes(pause_image(catatonit))
    )


def podman_image_id(reference: str) -> str | None:
    inspect = ["podman", "image", "inspect", "--format", "{{.Id}}", reference]
    found = subprocess.run(inspect, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def ensure_smoke_image() -> None:
    """The smoke test's image is the Debian base image the Dockerfile starts from: when
    podman lacks it, hack/images.py makes it (debootstrap, about 40 s; no registry)."""
    if podman_image_id(SMOKE_IMAGE) is None:
        subprocess.run([sys.executable, str(HACK / "images.py"), "build", "base"], check=True)


def smoke_image_archive() -> Path:
    """The smoke test's image, saved from podman once per image ID."""
    image_id = podman_image_id(SMOKE_IMAGE)
    if image_id is None:
        raise RuntimeError(f"podman has no {SMOKE_IMAGE}; make it with: python3 hack/images.py build base")
    save = ["podman", "save", "--quiet", "--format", "docker-archive", "-o"]
    return cached_archive(
        "debian-bookworm-slim",
        image_id,
        lambda p: subprocess.run([*save, str(p), SMOKE_IMAGE], check=True, capture_output=True),
    )


def import_images(nodes: list[RealNode], archives: list[Path]) -> None:
    """Into the CRI's namespace of every node's containerd, the nodes in parallel."""

    def import_into(node: RealNode) -> None:
        for archive in archives:
            ctr = ["ctr", "--address", str(node.socket), "-n", "k8s.io", "images", "import", str(archive)]
            result = subprocess.run(ctr, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{node.name}: {' '.join(ctr)} failed: {result.stderr.strip()}")

    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(import_into, node) for node in nodes]:
            future.result()
