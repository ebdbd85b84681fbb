"""The volume provisioner beside the real nodes (`cluster.py provisioner`): for every claim of
its StorageClasses, an XFS filesystem of exactly the claim's size (a sparse image on a loop
device, mounted under <state>/volumes) as a `local` PersistentVolume. A claim of an expandable
class that grows has its filesystem grown online, as a CSI driver with an external resizer
does: the pod sees the new size without a restart."""

from __future__ import annotations

import contextlib
import decimal
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .client import Api
from .host import mounts_under
from .layout import PROVISIONER, REAL_NODE_LABEL, Layout

QUANTITY_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                     "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


def quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity ("10Gi", "1.5G", "1e9") as a number; ValueError otherwise (the
    API server validates quantities, so only a new notation could get here)."""
    match = re.fullmatch(r"([0-9.eE+-]*?)([kMGTPE]i?|)", text)
    try:
        return decimal.Decimal(match.group(1)) * QUANTITY_SUFFIXES[match.group(2)]
    except (AttributeError, decimal.InvalidOperation) as error:
        raise ValueError(f"not a quantity this provisioner understands: {text!r}") from error


def volume_name(claim: dict) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def local_volume(claim: dict, storage_class: dict, path: Path) -> dict:
    """A PersistentVolume pre-bound to the claim. `local`, not `hostPath`: kubelets give a
    local volume to the pod's fsGroup, as a real disk, and never a hostPath. Both real nodes
    are this machine, so the directory is there whichever of them the pod lands on."""
    meta, spec = claim["metadata"], claim["spec"]
    real = {"key": REAL_NODE_LABEL, "operator": "In", "values": ["real"]}
    claim_ref = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **claim_ref},
            "local": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [real]}]}},
        },
    }


def provision_once(api: Api, volumes: Path) -> None:
    """One pass: volumes for new claims, more capacity for grown ones, none for released ones."""
    classes = {
        c["metadata"]["name"]: c
        for c in api.items("/apis/storage.k8s.io/v1/storageclasses")
        if c.get("provisioner") == PROVISIONER
    }
    existing = {pv["metadata"]["name"]: pv for pv in api.items("/api/v1/persistentvolumes")}
    for claim in api.items("/api/v1/persistentvolumeclaims"):
        storage_class = classes.get(claim["spec"].get("storageClassName") or "")
        if storage_class is None or "deletionTimestamp" in claim["metadata"]:
            continue
        volume = existing.get(volume_name(claim))
        try:
            if volume is None and not claim["spec"].get("volumeName"):
                create_volume(api, claim, storage_class, volumes)
            elif volume is not None and storage_class.get("allowVolumeExpansion"):
                expand_volume(api, claim, volume, volumes)
        except OSError as error:  # this claim's next pass retries; the others go on
            print(f"{volume_name(claim)}: {error}", flush=True)
    for volume in existing.values():
        annotations = volume["metadata"].get("annotations", {})
        released = volume.get("status", {}).get("phase") == "Released"
        deletable = volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        if annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and released and deletable:
            delete_volume(api, volume, volumes)


class LoopVolume:
    """An XFS filesystem in `<dir>.img`, mounted on `<dir>` through a loop device. XFS, not
    ext4: growing a mounted ext4 needs CAP_SYS_RESOURCE, which this machine's root lacks;
    xfs_growfs needs CAP_SYS_ADMIN only (XFS keeps no blocks for root either)."""

    def __init__(self, path: Path):
        self.path = path
        self.image = path.with_name(path.name + ".img")

    def mounted(self) -> bool:
        return str(self.path.resolve()) in mounts_under(self.path)

    def device(self) -> str | None:
        listed = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(self.image)])
        return listed.split()[0] if listed.split() else None

    def size(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_blocks * stat.f_frsize

    def create(self, size: int) -> None:
        """Idempotent: a pass that stopped half-way finishes the job."""
        self.path.mkdir(mode=0o755, exist_ok=True)
        if self.mounted():
            return
        if not self.image.exists():
            with self.image.open("wb") as image:  # sparse: only what is written takes space
                image.truncate(size)
            run(["mkfs.xfs", "-q", "-f", str(self.image)])
        run(["mount", "-o", "loop", str(self.image), str(self.path)])  # loop freed at unmount (autoclear)
        self.path.chmod(0o755)  # like a fresh disk: root's, 0755; the kubelet hands it to fsGroup

    def grow(self, size: int) -> bool:
        """Online: the image, then the loop device, then the mounted filesystem. False when the
        volume is not mounted here (the next pass tries again)."""
        device = self.device()
        if device is None or not self.mounted():
            return False
        if self.image.stat().st_size < size:
            with self.image.open("r+b") as image:
                image.truncate(size)
        run(["losetup", "--set-capacity", device])
        run(["xfs_growfs", str(self.path)])
        return True

    def remove(self) -> None:
        if self.mounted():
            run(["umount", str(self.path)])
        if self.image.exists():
            self.image.unlink()
        if self.path.is_dir():
            shutil.rmtree(self.path)


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


def create_volume(api: Api, claim: dict, storage_class: dict, volumes: Path) -> None:
    meta = claim["metadata"]
    if claim["spec"].get("volumeMode") == "Block":
        return  # only filesystems are made here; the claim stays Pending
    path = volumes / volume_name(claim)
    size = int(quantity(claim["spec"]["resources"]["requests"]["storage"]))
    LoopVolume(path).create(size)
    try:
        api.call("POST", "/api/v1/persistentvolumes", local_volume(claim, storage_class, path))
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: made by an earlier pass
            raise
    print(f"provisioned {volume_name(claim)} for {meta['namespace']}/{meta['name']}: {size} bytes at {path}",
          flush=True)  # fmt: skip


def expand_volume(api: Api, claim: dict, volume: dict, volumes: Path) -> None:
    """The filesystem first; then the PV's capacity and the claim's, which is what tells the
    claim's owner that the resize is done."""
    wanted = claim["spec"]["resources"]["requests"]["storage"]
    has = claim.get("status", {}).get("capacity", {}).get("storage")
    if claim.get("status", {}).get("phase") != "Bound" or has is None or quantity(wanted) <= quantity(has):
        return
    loop = LoopVolume(volumes / volume["metadata"]["name"])
    if not loop.grow(int(quantity(wanted))):
        return
    if quantity(volume["spec"]["capacity"]["storage"]) < quantity(wanted):
        api.call("PATCH", f"/api/v1/persistentvolumes/{volume['metadata']['name']}",
                 {"spec": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    meta = claim["metadata"]
    api.call("PATCH", f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
             {"status": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    print(f"expanded {volume['metadata']['name']} to {wanted} ({loop.size()} bytes in the filesystem)", flush=True)


def delete_volume(api: Api, volume: dict, volumes: Path) -> None:
    path = Path(volume["spec"].get("local", {}).get("path", "/nonexistent"))
    # Only a volume this provisioner made: named after the volume, under our volumes.
    if path.parent == volumes and path.name == volume["metadata"]["name"]:
        LoopVolume(path).remove()
    with contextlib.suppress(urllib.error.HTTPError):
        api.call("DELETE", f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
    print(f"deleted {volume['metadata']['name']} and {path}", flush=True)


def run_provisioner(layout: Layout, interval: float = 1.0) -> int:
    """`cluster.py provisioner`: the real nodes' dynamic volumes, until stopped."""
    api = Api(layout)
    layout.volumes.mkdir(parents=True, exist_ok=True)
    print(f"provisioner {PROVISIONER}: volumes under {layout.volumes}", flush=True)
    while True:
        try:
            provision_once(api, layout.volumes)
        except (OSError, ValueError, KeyError) as error:  # the next pass retries
            print(f"provisioning pass failed: {error!r}", flush=True)
        time.sleep(interval)
