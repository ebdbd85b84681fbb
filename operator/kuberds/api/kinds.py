"""A kind of the API, as the CRD generator, the API wrapper and the triggers see it.

Each kind's module in kuberds.api.v1alpha1 declares its `KIND`; kuberds.api.v1alpha1.KINDS
lists them all, and everything that needs "every kind" reads that list.
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds import API_GROUP

Column = tuple[str, str, str, int]  # printer column: name, type, jsonPath, priority


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type
    status: type
    columns: tuple[Column, ...]
    scale_replicas: str | None = None  # spec path of a replica count, for the scale subresource
    deletion_protected: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"

    @property
    def owner_label(self) -> str:
        """The value of kuberds.io/owner-kind on the objects built for this kind."""
        return self.kind.lower()


SERVER_COLUMNS: tuple[Column, ...] = (
    ("Engine", "string", ".spec.engine", 0),
    ("Version", "string", ".status.engineVersion", 0),
    ("Class", "string", ".spec.instanceClass", 1),
    ("Status", "string", ".status.phase", 0),
    ("Endpoint", "string", ".status.endpoint", 0),
    ("Primary", "string", ".status.currentPrimary", 1),
    ("Age", "date", ".metadata.creationTimestamp", 0),
)
