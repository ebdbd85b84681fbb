"""What the operator tells a server's agents (`agent.json`), and where backups go. Pure."""

from __future__ import annotations

from kuberds.agent.config import AgentConfig, BackupPlan, ClientTls, ObjectStoreTarget, Repository, RestorePlan
from kuberds.api import v1alpha1 as api
from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.builders.meta import ROLE_LABEL, Owner

SCOPE_LABEL = "app.kubernetes.io/instance"


def store_target(store: api.ObjectStore, ca_bundle: str | None = None) -> ObjectStoreTarget:
    """`ca_bundle`: the content of the store's caSecretName, read by the handler."""
    return ObjectStoreTarget(bucket=store.bucket, endpoint=store.endpoint, region=store.region,
                             force_path_style=store.force_path_style, verify_tls=store.verify_tls,
                             ca_bundle=ca_bundle)  # fmt: skip


def repository(owner: Owner, store: api.ObjectStore, encrypted: bool, ca_bundle: str | None = None) -> Repository:
    """<prefix>/<namespace>/<name>/<uid>: the uid keeps a re-created namesake's backups apart
    (its database has a different system identifier, pgBackRest would refuse to mix them)."""
    parts = [p for p in (store.path.strip("/"), owner.namespace, owner.name, owner.uid) if p]
    return Repository(store=store_target(store, ca_bundle), path="/" + "/".join(parts), stanza=owner.name,
                      encrypted=encrypted)  # fmt: skip


def backup_plan(owner: Owner, spec: api.ServerSpec, store: api.ObjectStore | None,
                ca_bundle: str | None = None) -> BackupPlan | None:  # fmt: skip
    if store is None:
        return None
    return BackupPlan(repository=repository(owner, store, spec.backup.encryption.enabled, ca_bundle),
                      retention_days=spec.backup.retention_days, window=spec.backup.window)  # fmt: skip


def agent_config(owner: Owner, spec: api.DBInstanceSpec, *, selector: dict[str, str], port: int, version: str,
                 parameters: dict[str, str], backup: BackupPlan | None,
                 restore: RestorePlan | None, tls_directory: str | None = None) -> AgentConfig:  # fmt: skip
    labels = {k: v for k, v in selector.items() if k != SCOPE_LABEL}
    return AgentConfig(
        scope=owner.name,
        namespace=owner.namespace,
        port=port,
        engine_version=version,
        instances=2 if spec.multi_az else 1,
        scope_label=SCOPE_LABEL,
        labels=labels,
        role_label=ROLE_LABEL,
        synchronous=spec.multi_az,
        synchronous_strict=False,  # two members: strict would stop writes when one is lost
        memory_limit=DB_INSTANCE_CLASSES[spec.instance_class].memory,
        parameters=parameters,
        master_username=spec.master_username,
        database_name=spec.database_name,
        backup=backup,
        restore=restore,
        tls=ClientTls(directory=tls_directory, require=spec.tls.require) if tls_directory else None,
    )
