"""The leader Lease (coordination.k8s.io/v1) as the Redis agents use it: read it, take it,
renew it, let it go. Every write is conditional on the resourceVersion read, so of two
members that try at once exactly one wins (the other gets KubeConflict)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kuberds.agent.kube import AgentKube
from kuberds.agent.redis.decide import Lease


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text.replace("Z", ""), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


class LeaderLease:
    def __init__(self, kube: AgentKube, namespace: str, name: str, me: str, seconds: int):
        self.kube, self.namespace, self.name, self.me, self.seconds = kube, namespace, name, me, seconds
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

    def take(self) -> None:
        """Becomes the holder (KubeConflict: another member took it first)."""
        if self.read is None:
            meta = {"name": self.name, "namespace": self.namespace}
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                    "spec": self._spec(self.me, 0)}  # fmt: skip
            self.read = self.kube.create("Lease", self.namespace, body)
            return
        spec = self.read.get("spec") or {}
        moved = 0 if spec.get("holderIdentity") == self.me else 1
        self._write(self._spec(self.me, (spec.get("leaseTransitions") or 0) + moved))

    def renew(self) -> None:
        self._write({"renewTime": _now()})

    def release(self) -> None:
        self._write({"holderIdentity": None, "renewTime": None})

    def _write(self, spec: dict) -> None:
        patch = {"metadata": {"resourceVersion": self.read["metadata"]["resourceVersion"]}, "spec": spec}
        self.read = self.kube.merge_patch("Lease", self.namespace, self.name, patch)
