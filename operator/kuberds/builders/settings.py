"""The NAME-settings ConfigMap: agent.json, what the operator tells a server's agents, and
where its backups go. Pure."""

from __future__ import annotations

import json

from kuberds.api import v1alpha1 as api
from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.api.schema import parse, to_json
from kuberds.builders import names
from kuberds.builders.meta import INSTANCE_LABEL, Owner
from kuberds.builders.server import Server
from kuberds.config import OperatorConfig
from kuberds.contract import ROLE_LABEL, SETTINGS_FILE, TLS_CA_FILE, TLS_DIR
from kuberds.contract.settings import AgentConfig, BackupPlan, ClientTls, ObjectStoreTarget, Repository
from kuberds.engines import engine_for


def store_target(store: api.ObjectStore, ca_bundle: str | None = None) -> ObjectStoreTarget:
    """`ca_bundle`: the content of the store's caSecretName, read by the handler."""
    return ObjectStoreTarget(bucket=store.bucket, endpoint=store.endpoint, region=store.region,
                             force_path_style=store.force_path_style, verify_tls=store.verify_tls,
                             ca_bundle=ca_bundle)  # fmt: skip


def repository(owner: Owner, store: api.ObjectStore, encrypted: bool, ca_bundle: str | None = None) -> Repository:
    """<prefix>/<namespace>/<name>/<uid>: the uid keeps a re-created namesake's backups apart
    (its database has a different system identifier, the backup tool would refuse to mix them)."""
    parts = [p for p in (store.path.strip("/"), owner.namespace, owner.name, owner.uid) if p]
    return Repository(store=store_target(store, ca_bundle), path="/" + "/".join(parts), stanza=owner.name,
                      encrypted=encrypted)  # fmt: skip


def backup_plan(owner: Owner, spec: api.ServerSpec, store: api.ObjectStore | None,
                ca_bundle: str | None = None) -> BackupPlan | None:  # fmt: skip
    if store is None:
        return None
    return BackupPlan(repository=repository(owner, store, spec.backup.encryption.enabled, ca_bundle),
                      retention_days=spec.backup.retention_days, window=spec.backup.window)  # fmt: skip


def agent_config(server: Server) -> AgentConfig:
    spec = server.spec
    size = DB_INSTANCE_CLASSES[spec.instance_class]
    labels = {k: v for k, v in server.selector().items() if k != INSTANCE_LABEL}
    return AgentConfig(
        scope=server.name,
        kind=server.owner.kind,
        namespace=server.owner.namespace,
        port=server.port,
        engine_version=server.version,
        instances=server.replicas,
        scope_label=INSTANCE_LABEL,
        labels=labels,
        role_label=ROLE_LABEL,
        synchronous=server.synchronous,
        synchronous_strict=server.synchronous_strict,
        memory_limit=size.memory,
        parameters=server.engine.parameters(size, spec.parameters, server.claim_size),
        master_username=spec.master_username,
        database_name=spec.database_name,
        backup=server.backup,
        restore=server.restore,
        standby=server.standby,
        tls=ClientTls(
            directory=TLS_DIR,
            require=spec.tls.require,
            ca_file=f"{TLS_DIR}/{TLS_CA_FILE}" if server.issues_certificate else None,
        )
        if server.tls_secret
        else None,
    )


def settings_config_map(server: Server) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": server.meta(names.settings(server.name)),
        "data": {
            SETTINGS_FILE: agent_config(server).to_json(),
            "spec.json": json.dumps(to_json(server.spec), indent=1, sort_keys=True),
        },
    }


def chosen_store(named: api.ObjectStore | None, config: OperatorConfig) -> api.ObjectStore | None:
    """The store a spec names, else the one the operator was installed with, else none."""
    if named is not None:
        return named
    return parse(api.ObjectStore, config.default_object_store) if config.default_object_store else None


def passphrase_secret(owner_name: str, encryption: api.BackupEncryption) -> str | None:
    """The Secret with a repository's passphrase (None: the repository is not encrypted)."""
    return (encryption.key_secret_name or names.backup_key(owner_name)) if encryption.enabled else None


def object_store(spec: api.ServerSpec, config: OperatorConfig) -> api.ObjectStore | None:
    """None for an engine without backups: the operator's default store is not for it (a store
    the spec names is refused with a condition before this is asked)."""
    engine = engine_for(spec.engine)
    if engine is not None and not engine.backups:
        return None
    return chosen_store(spec.backup.object_store, config)


def backup_key_secret(server_name: str, spec: api.ServerSpec) -> str | None:
    return passphrase_secret(server_name, spec.backup.encryption)
