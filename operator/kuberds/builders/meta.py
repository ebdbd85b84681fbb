"""Labels and owner references every built object shares. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from kuberds import API_GROUP, API_VERSION, __version__

MANAGED_BY = {"app.kubernetes.io/managed-by": "kuberds"}
OWNER_KIND_LABEL = "kuberds.io/owner-kind"
INSTANCE_LABEL = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class Owner:
    """The custom resource an object belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: dict) -> Owner:
        meta = body["metadata"]
        return cls(body["kind"], meta["name"], meta["namespace"], meta["uid"])

    def reference(self) -> dict:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def selector(self, component: str) -> dict[str, str]:
        """Labels that select this owner's objects of one component (stable: never change)."""
        return {
            INSTANCE_LABEL: self.name,
            "app.kubernetes.io/component": component,
            OWNER_KIND_LABEL: self.kind.lower(),
        }

    def labels(self, component: str, engine: str, version: str | None = None) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": engine,
            **self.selector(component),
            "app.kubernetes.io/part-of": "kuberds",
            **MANAGED_BY,
            "kuberds.io/operator-version": __version__,
        }
        if version:
            labels["app.kubernetes.io/version"] = version
        return labels

    def metadata(self, name: str, labels: dict[str, str], owned: bool = True, **extra: dict) -> dict:
        meta = {"name": name, "namespace": self.namespace, "labels": labels, **extra}
        if owned:
            meta["ownerReferences"] = [self.reference()]
        return meta


def owner_of(labels: dict[str, str] | None) -> tuple[str, str] | None:
    """(kind label, name) of the kuberds resource an object was built for, from its labels."""
    labels = labels or {}
    kind, name = labels.get(OWNER_KIND_LABEL), labels.get(INSTANCE_LABEL)
    return (kind, name) if kind and name else None
