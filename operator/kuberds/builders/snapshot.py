"""DBSnapshot objects the operator creates itself (final snapshots). Pure."""

from __future__ import annotations

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import to_json
from kuberds.builders import settings
from kuberds.builders.meta import INSTANCE_LABEL, MANAGED_BY, Owner
from kuberds.config import OperatorConfig
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


def snapshot_repository(source: dict, spec: api.ServerSpec, config: OperatorConfig) -> dict | None:
    """What a restore of the source's snapshots needs, for the snapshot's status: the store
    and repository, and the passphrase's Secret (None: the source has no store)."""
    store = settings.object_store(spec, config)
    if store is None:
        return None
    owner = Owner.of(source)
    repository = settings.repository(owner, store, spec.backup.encryption.enabled)
    return to_json(api.SnapshotRepository(store=store, path=repository.path, stanza=repository.stanza,
                                          encrypted=repository.encrypted,
                                          key_secret_name=settings.backup_key_secret(owner.name, spec)))  # fmt: skip
