"""DBSnapshot objects the operator creates itself (final snapshots). Pure."""

from __future__ import annotations

from kuberds import API_GROUP, API_VERSION
from kuberds.builders.meta import MANAGED_BY, Owner

SNAPSHOT_KIND_LABEL = "kuberds.io/snapshot-kind"
SOURCE_FIELD = {"DBInstance": "dbInstance", "DBCluster": "dbCluster"}  # DBSnapshot spec.source keys


def final_snapshot_name(server_name: str, deleted_at: str) -> str:
    """Stable across retries of the finalizer: derived from the deletion timestamp."""
    stamp = deleted_at.replace("-", "").replace(":", "").replace("T", "-").rstrip("Z").lower()
    return f"{server_name[:40]}-final-{stamp}"


def _final_labels(owner: Owner) -> dict[str, str]:
    return {
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/part-of": "kuberds",
        **MANAGED_BY,
        SNAPSHOT_KIND_LABEL: "final",
    }


def final_snapshot(owner: Owner, name: str) -> dict:
    # No owner reference: the snapshot must outlive the server it was taken of.
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "DBSnapshot",
        "metadata": owner.metadata(
            name,
            {
                "app.kubernetes.io/instance": owner.name,
                "app.kubernetes.io/part-of": "kuberds",
                **MANAGED_BY,
                SNAPSHOT_KIND_LABEL: "final",
            },
            owned=False,
        ),
        "spec": {"source": {SOURCE_FIELD[owner.kind]: owner.name}},
    }
