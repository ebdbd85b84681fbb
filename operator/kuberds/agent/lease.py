"""The leader Lease (coordination.k8s.io/v1) as the agents that decide over one use it (Redis,
MariaDB): read it, take it, renew it, let it go. Every write is conditional on the
resourceVersion read, so of two members that try at once exactly one wins (the other gets
KubeConflict)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kuberds.agent.kube import AgentKube, KubeConflict, KubeError

log = logging.getLogger("kuberds.agent")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    """A MicroTime; None (a lapsed lease) when missing or not one."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Lease:
    """The lease as a member saw it, for its decision."""

    holder: str | None  # None: free (released, or never held)
    fresh: bool  # renewed within its duration
    exists: bool = True


class LeaderLease:
    def __init__(self, kube: AgentKube, namespace: str, name: str, me: str, seconds: int,
                 owner: dict | None = None, labels: dict[str, str] | None = None):  # fmt: skip
        """`owner`: the controller reference the Lease is made with (the members' StatefulSet),
        so it goes with the cluster; `labels`: the server's, so the operator finds it."""
        self.kube, self.namespace, self.name, self.me, self.seconds = kube, namespace, name, me, seconds
        self.owner, self.labels = owner, labels
        self.read: dict | None = None  # the object as last read (None: absent)

    def observe(self) -> Lease:
        """Raises KubeError when the API server does not answer."""
        self.read = self.kube.get("Lease", self.namespace, self.name)
        if self.read is None:
            return Lease(None, False, exists=False)
        spec = self.read.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self.seconds
        fresh = bool(holder and renewed and datetime.now(UTC) - renewed < timedelta(seconds=duration))
        return Lease(holder, fresh)

    def _spec(self, holder: str, transitions: int) -> dict:
        now = _now()
        return {"holderIdentity": holder, "leaseDurationSeconds": self.seconds, "acquireTime": now, "renewTime": now,
                "leaseTransitions": transitions}  # fmt: skip

    def take(self, annotations: dict[str, str] | None = None) -> None:
        """Becomes the holder (KubeConflict: another member took it first). `annotations`: what
        the new holder records with it (MariaDB: where it took over)."""
        self._take_for(self.me, annotations)

    def hand_over(self, to: str, annotations: dict[str, str] | None = None) -> None:
        """Writes the lease in another member's name (a planned switchover)."""
        self._take_for(to, annotations)

    def acquired(self) -> datetime | None:
        """When the holder as last read took the lease (None: unknown)."""
        return _parse(((self.read or {}).get("spec") or {}).get("acquireTime"))

    def annotations(self) -> dict[str, str]:
        return dict(((self.read or {}).get("metadata") or {}).get("annotations") or {})

    def _take_for(self, holder: str, annotations: dict[str, str] | None) -> None:
        if self.read is None:
            meta = {"name": self.name, "namespace": self.namespace,
                    **({"ownerReferences": [self.owner]} if self.owner else {}),
                    **({"labels": self.labels} if self.labels else {}),
                    **({"annotations": annotations} if annotations else {})}  # fmt: skip
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                    "spec": self._spec(holder, 0)}  # fmt: skip
            self.read = self.kube.create("Lease", self.namespace, body)
            return
        spec = self.read.get("spec") or {}
        moved = 0 if spec.get("holderIdentity") == holder else 1
        self._write(self._spec(holder, (spec.get("leaseTransitions") or 0) + moved), annotations)

    def renew(self) -> None:
        self._write({"renewTime": _now()})

    def release(self) -> None:
        """Lets the lease go, if this member still holds it as last read."""
        if self.read and (self.read.get("spec") or {}).get("holderIdentity") == self.me:
            self._write({"holderIdentity": None, "renewTime": None})

    def let_go(self) -> None:
        """On the way out (the engine stopped, or a clean stop): read it again and release it if
        this member still holds it; an API server that does not answer only leaves it to lapse."""
        try:
            self.observe()
            self.release()
        except (KubeError, KubeConflict) as error:
            log.warning("releasing the lease: %s", error)

    def _write(self, spec: dict, annotations: dict[str, str] | None = None) -> None:
        if self.read is None:
            raise KubeConflict(f"lease {self.name} is gone")
        meta = {"resourceVersion": self.read["metadata"]["resourceVersion"],
                **({"annotations": annotations} if annotations else {})}  # fmt: skip
        patch = {"metadata": meta, "spec": spec}
        written = self.kube.merge_patch("Lease", self.namespace, self.name, patch)
        if written is None:  # deleted meanwhile: nothing was taken or renewed
            self.read = None
            raise KubeConflict(f"lease {self.name} is gone")
        self.read = written
