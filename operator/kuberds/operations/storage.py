"""A server's volumes: the size they should have (spec.storage.size, or more once autoscaling
grew them), growing them in place, and what their agents report of their free space. Pure:
the callers read the claims, the StorageClasses of those that must grow, and the pods."""

from __future__ import annotations

from dataclasses import dataclass, field

from kuberds.builders.status import FALSE, TRUE, Condition
from kuberds.contract.report import AgentReport
from kuberds.quantity import to_bytes

GIB = 2**30
# A volume with less than this free (or 1 %) is full: PostgreSQL cannot add a WAL segment
# (16 MiB) and a checkpoint, and the next writes fail.
FULL_BYTES = 32 * 2**20
LOW_PERCENT = 10  # RDS's low-storage line; StorageLow warns below it when nothing will grow
# Unarchived WAL segments (16 MiB each) worth naming as the cause of a full volume.
UNARCHIVED_WAL_CAUSE = 4


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


def wanted_size(spec_size: str, status: dict) -> str:
    """What the volumes should have: spec.storage.size, or the larger size autoscaling grew
    them to (recorded in status; volumes never shrink, so it stays when autoscaling is off)."""
    grown = (status.get("storage") or {}).get("autoscaledSize")
    return grown if grown and to_bytes(grown) > to_bytes(spec_size) else spec_size


@dataclass(frozen=True)
class VolumeSeen:
    """One member's data volume as its agent reported it."""

    member: str
    size_bytes: int
    free_bytes: int
    unarchived_segments: int | None = None

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.size_bytes if self.size_bytes else 0.0

    @property
    def full(self) -> bool:
        return self.free_bytes < max(FULL_BYTES, self.size_bytes // 100)


def fullest(pods: list[dict]) -> VolumeSeen | None:
    """The member whose volume has the least free share (all grow together, so the fullest
    decides); None until an agent reported its volume."""
    seen = []
    for pod in pods:
        report = AgentReport.from_pod(pod)
        if report.volume_bytes and report.volume_free_bytes is not None:
            seen.append(VolumeSeen(pod["metadata"]["name"], report.volume_bytes, report.volume_free_bytes,
                                   report.archive_segments_behind))  # fmt: skip
    return min(seen, key=lambda v: (v.free_percent, v.member), default=None)


def volume_conditions(volume: VolumeSeen | None, autoscaling: bool, at_max_size: bool) -> list[Condition]:
    """StorageFull, and StorageLow when nothing will grow the volumes (autoscaling off, or at
    its maxSize): both True is the problem. None before any agent reported its volume."""
    if volume is None:
        return []
    remedy = ("raise storage.autoscaling.maxSize" if autoscaling and at_max_size else
              "raise storage.size (the volumes grow online)" if not autoscaling else
              "storage autoscaling will grow the volumes")  # fmt: skip
    figures = f"{volume.member}'s volume has {_size(volume.free_bytes)} free of {_size(volume.size_bytes)}"
    if volume.full:
        cause = ""
        if (volume.unarchived_segments or 0) >= UNARCHIVED_WAL_CAUSE:
            cause = (f"; {volume.unarchived_segments} WAL segments are kept until they are archived (see "
                     "BackupHealthy)")  # fmt: skip
        reason = "UnarchivedWal" if cause else "VolumeFull"
        full = Condition("StorageFull", TRUE, reason, f"{figures}: writes fail{cause}; {remedy}")
    else:
        full = Condition("StorageFull", FALSE, "EnoughFreeSpace", "")
    low = volume.free_percent <= LOW_PERCENT and (not autoscaling or at_max_size)
    if low:
        return [full, Condition("StorageLow", TRUE, "LowFreeSpace",
                                f"{figures} ({volume.free_percent:.0f}%); {remedy}")]  # fmt: skip
    return [full, Condition("StorageLow", FALSE, "EnoughFreeSpace", "")]


def _size(size: int) -> str:
    return f"{size / GIB:.2f}Gi" if size >= GIB else f"{size / 2**20:.0f}Mi"
