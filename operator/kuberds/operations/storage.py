"""Growing a server's volumes in place when spec.storage.size grows. Pure: the pass reads
the claims, and the StorageClasses of those that must grow, first."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuberds.builders.status import FALSE, Condition
from kuberds.quantity import to_bytes


@dataclass(frozen=True)
class Growth:
    patches: list[tuple[str, dict]] = field(default_factory=list)  # claim name → merge patch
    condition: Condition | None = None  # why some cannot grow (None: every claim asked)


def too_small(claims: list[dict], wanted: str) -> list[dict]:
    return [c for c in claims if to_bytes(c["spec"]["resources"]["requests"]["storage"]) < to_bytes(wanted)]


def classes_to_read(claims: list[dict], wanted: str) -> set[str]:
    return {c["spec"]["storageClassName"] for c in too_small(claims, wanted) if c["spec"].get("storageClassName")}


def plan(wanted: str, claims: list[dict], classes: dict[str, dict | None]) -> Growth:
    """Asks for the larger size on each claim whose StorageClass can expand volumes; one that
    cannot makes the condition say so (the API server would refuse the request)."""
    patches = []
    for claim in too_small(claims, wanted):
        class_name = claim["spec"].get("storageClassName")
        if not (classes.get(class_name) or {}).get("allowVolumeExpansion"):
            have = claim["spec"]["resources"]["requests"]["storage"]
            return Growth(patches, Condition("StorageResized", FALSE, "ExpansionNotSupported",
                          f"StorageClass {class_name or '(none)'} of {claim['metadata']['name']} cannot expand "
                          f"volumes; they stay at {have}"))  # fmt: skip
        patches.append((claim["metadata"]["name"], {"spec": {"resources": {"requests": {"storage": wanted}}}}))
    return Growth(patches)


def refused(message: str) -> Condition:
    return Condition("StorageResized", FALSE, "ResizeRefused", message)


def earlier_volumes(body: dict, stateful_set: dict | None, claims: list[dict]) -> Condition | None:
    """Volumes of this server's name made before it was: an earlier server's, kept when it was
    deleted. Its StatefulSet would mount them, with data whose passwords the new server's
    Secrets do not know; RDS never hands one instance's storage to another, nor does kuberds."""
    if stateful_set is not None:
        return None
    created = body["metadata"].get("creationTimestamp") or ""
    older = sorted(c["metadata"]["name"] for c in claims if (c["metadata"].get("creationTimestamp") or "") < created)
    if not older:
        return None
    return Condition("Reconciled", FALSE, "VolumesOfAnEarlierServer",
                     f"PersistentVolumeClaim {', '.join(older)} was made for an earlier {body['kind']} of this name "
                     f"(before this one was created at {created}), and kuberds does not give one server's volumes "
                     "to another: delete them to start afresh, or restore from that server's final DBSnapshot "
                     "under another name")  # fmt: skip
