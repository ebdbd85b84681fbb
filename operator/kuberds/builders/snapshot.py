"""DBSnapshot objects the operator creates itself (final snapshots). Pure."""

from __future__ import annotations

from kuberds.builders.meta import INSTANCE_LABEL, MANAGED_BY, Owner
from kuberds.contract import snapshots

SNAPSHOT_KIND_LABEL = "kuberds.io/snapshot-kind"


def final_snapshot(owner: Owner, name: str) -> dict:
    # No owner reference: the snapshot must outlive the server it was taken of.
    labels = {INSTANCE_LABEL: owner.name, "app.kubernetes.io/part-of": "kuberds", **MANAGED_BY,
              SNAPSHOT_KIND_LABEL: "final"}  # fmt: skip
    return {
        "apiVersion": snapshots.API_VERSION_FULL,
        "kind": snapshots.KIND,
        "metadata": owner.metadata(name, labels, owned=False),
        "spec": {"source": {snapshots.SOURCE_FIELDS[owner.kind]: owner.name}},
    }
