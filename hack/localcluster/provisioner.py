"""The volume provisioner beside the real nodes (`cluster.py provisioner`): a directory under
<state>/volumes as a `local` PersistentVolume for every claim of its StorageClasses."""

from __future__ import annotations

import contextlib
import decimal
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from .client import Api
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
        if volume is None and not claim["spec"].get("volumeName"):
            create_volume(api, claim, storage_class, volumes)
        elif volume is not None and storage_class.get("allowVolumeExpansion"):
            expand_volume(api, claim, volume)
    for volume in existing.values():
        annotations = volume["metadata"].get("annotations", {})
        released = volume.get("status", {}).get("phase") == "Released"
        deletable = volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        if annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and released and deletable:
            delete_volume(api, volume, volumes)


def create_volume(api: Api, claim: dict, storage_class: dict, volumes: Path) -> None:
    meta = claim["metadata"]
    if claim["spec"].get("volumeMode") == "Block":
        return  # a directory cannot be a block device; the claim stays Pending
    path = volumes / volume_name(claim)
    # Like a fresh filesystem: root's, 0755. The kubelet hands it to the pod's fsGroup.
    path.mkdir(mode=0o755, exist_ok=True)
    try:
        api.call("POST", "/api/v1/persistentvolumes", local_volume(claim, storage_class, path))
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: made by an earlier pass
            raise
    print(f"provisioned {volume_name(claim)} for {meta['namespace']}/{meta['name']} at {path}", flush=True)


def expand_volume(api: Api, claim: dict, volume: dict) -> None:
    """A directory has no size to grow: the new size is recorded, as a resizer would."""
    wanted = claim["spec"]["resources"]["requests"]["storage"]
    has = claim.get("status", {}).get("capacity", {}).get("storage")
    if claim.get("status", {}).get("phase") != "Bound" or has is None or quantity(wanted) <= quantity(has):
        return
    if quantity(volume["spec"]["capacity"]["storage"]) < quantity(wanted):
        api.call("PATCH", f"/api/v1/persistentvolumes/{volume['metadata']['name']}",
                 {"spec": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    meta = claim["metadata"]
    api.call("PATCH", f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
             {"status": {"capacity": {"storage": wanted}}}, patch=True)  # fmt: skip
    print(f"expanded {volume['metadata']['name']} to {wanted}", flush=True)


def delete_volume(api: Api, volume: dict, volumes: Path) -> None:
    path = Path(volume["spec"].get("local", {}).get("path", "/nonexistent"))
    # Only a directory this provisioner made: named after the volume, under our volumes.
    if path.parent == volumes and path.name == volume["metadata"]["name"] and path.is_dir():
        shutil.rmtree(path)
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
