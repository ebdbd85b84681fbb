"""The new object a restore creates: a server of the source's kind, with what made the source
what it is (engine, class, storage, database, parameters, backups, network, placement) and
`spec.restore`. Pure.

Left out on purpose: the master user's Secret when the user gave one (the restored server gets
a password of its own), a certificate the user gave (it names the source's hosts), the backup
passphrase's Secret (kuberds makes the new server its own), deletion protection, a paused
automation and the final snapshot's name (they are the source's decisions, not its shape).
"""

from __future__ import annotations

from datetime import datetime

from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import (
    API_VERSION_STRING,
    CACHECLUSTER,
    DBCLUSTER,
    READREPLICA,
    SERVER_KINDS,
    KindInfo,
    name_of,
    spec,
    status,
)
from kuberds.plugin.text import parse_time, rfc3339
from kuberds.quantity import to_bytes

SERVER_FIELDS = ("engine", "engineVersion", "instanceClass", "multiAZ", "databaseName", "masterUsername", "port",
                 "parameters", "maintenanceWindow", "network", "scheduling", "monitoring", "proxy")  # fmt: skip
CLUSTER_FIELDS = ("readers", "readerMaxLagSeconds", "promotionTiers", "readerAutoscaling", "customEndpoints")
CACHE_FIELDS = ("engine", "engineVersion", "nodeType", "replicas", "automaticFailover", "multiAZ", "port", "parameters",
                "maintenanceWindow", "network", "scheduling", "monitoring")  # fmt: skip


def restore_time(text: str, now: datetime) -> str | None:
    """An RFC 3339 time in UTC, or None for `latest`; refused when unreadable or in the future."""
    if text.strip().lower() == "latest":
        return None
    moment = parse_time(text)
    if moment is None:
        raise PluginError(f"--to {text!r}: give `latest` or a time such as 2026-05-01T03:04:05Z (RFC 3339; "
                          "without a zone it is UTC)")  # fmt: skip
    if moment > now:
        raise PluginError(f"--to {rfc3339(moment)} is in the future (now is {rfc3339(now)})")
    return rfc3339(moment)


def window_warning(source: dict, time: str | None) -> str | None:
    """A word when the time lies outside the restorable window the source's status gives (the
    operator judges it for good: RestoreTimeOutOfRange, RestoreTimeNotYetRestorable)."""
    st = status(source)
    earliest, latest = parse_time(st.get("earliestRestorableTime")), parse_time(st.get("latestRestorableTime"))
    if time is None:
        return None if latest else f"{name_of(source)} reports no latestRestorableTime yet"
    moment = parse_time(time)
    if earliest and moment < earliest:
        return f"{time} is before {name_of(source)}'s earliest restorable time {st['earliestRestorableTime']}"
    if latest and moment > latest:
        return (f"{time} is after {name_of(source)}'s latest restorable time {st['latestRestorableTime']}: "
                "the restore waits until it is restorable")  # fmt: skip
    return None


def _picked(source_spec: dict, names: tuple[str, ...]) -> dict:
    return {k: source_spec[k] for k in names if k in source_spec}


def _storage(source: dict) -> dict | None:
    """The source's storage, at the size its volumes have grown to (the data may need it)."""
    storage = dict(spec(source).get("storage") or {})
    grown = (status(source).get("storage") or {}).get("autoscaledSize")
    if grown and (not storage.get("size") or to_bytes(grown) > to_bytes(storage["size"])):
        storage["size"] = grown
    return storage or None


def _backup(backup: dict | None) -> dict | None:
    if not backup:
        return None
    out = _picked(backup, ("retentionDays", "window", "objectStore"))
    if "enabled" in (backup.get("encryption") or {}):
        out["encryption"] = {"enabled": backup["encryption"]["enabled"]}
    return out


def _tls(tls: dict | None) -> dict | None:
    return _picked(tls, ("enabled", "require")) if tls else None


def server_spec(source: dict) -> dict:
    """What a restored DBInstance or DBCluster keeps of its source."""
    source_spec = spec(source)
    out = _picked(source_spec, SERVER_FIELDS)
    if source.get("kind") == DBCLUSTER.kind:
        out |= _picked(source_spec, CLUSTER_FIELDS)
    extra = {"storage": _storage(source), "backup": _backup(source_spec.get("backup")),
             "tls": _tls(source_spec.get("tls"))}  # fmt: skip
    return out | {k: v for k, v in extra.items() if v}


def cache_spec(source: dict) -> dict:
    """What a restored Redis CacheCluster keeps of its source (its ACL users too)."""
    source_spec = spec(source)
    out = _picked(source_spec, CACHE_FIELDS)
    auth = source_spec.get("auth") or {}
    if auth:
        out["auth"] = _picked(auth, ("enabled", "users"))
    snapshots = source_spec.get("snapshots") or {}
    if snapshots:
        out["snapshots"] = _picked(snapshots, ("retentionDays", "window", "objectStore"))
        if "enabled" in (snapshots.get("encryption") or {}):
            out["snapshots"]["encryption"] = {"enabled": snapshots["encryption"]["enabled"]}
    if tls := _tls(source_spec.get("tls")):
        out["tls"] = tls
    return out


def new_object(info: KindInfo, name: str, body: dict) -> dict:
    return {"apiVersion": API_VERSION_STRING, "kind": info.kind, "metadata": {"name": name}, "spec": body}


def point_in_time(info: KindInfo, source: dict, new_name: str, time: str | None) -> dict:
    if info in (READREPLICA, CACHECLUSTER):
        hint = ("restore from its source" if info is READREPLICA
                else "restore a Redis CacheCluster from a DBSnapshot: --from-snapshot SNAPSHOT")  # fmt: skip
        raise PluginError(f"{info.kind} has no point-in-time restore: {hint}")
    point = {"source": name_of(source), **({"time": time} if time else {"latest": True})}
    return new_object(info, new_name, {**server_spec(source), "restore": {"pointInTime": point}})


def snapshot_kind(snapshot: dict) -> KindInfo:
    source = spec(snapshot).get("source") or {}
    for info in SERVER_KINDS:
        if info.snapshot_field and source.get(info.snapshot_field):
            return info
    raise PluginError(f"DBSnapshot {name_of(snapshot)} names no source server in spec.source")


def snapshot_source_name(snapshot: dict) -> str:
    return (spec(snapshot).get("source") or {}).get(snapshot_kind(snapshot).snapshot_field)


def from_snapshot(snapshot: dict, template: dict | None, new_name: str) -> dict:
    """A new server from a DBSnapshot, shaped like `template` (the snapshot's source, or the
    server the user named) when there is one; else from what the snapshot says of its engine."""
    info = snapshot_kind(snapshot) if template is None else next(i for i in SERVER_KINDS
                                                                   if i.kind == template.get("kind"))  # fmt: skip
    engine = status(snapshot).get("engine")
    if template is not None:
        if info is READREPLICA:
            raise PluginError("a ReadReplica cannot be restored into: name a DBInstance or DBCluster to copy")
        body = cache_spec(template) if info is CACHECLUSTER else server_spec(template)
        if engine and body.get("engine") and engine != body["engine"]:
            raise PluginError(f"DBSnapshot {name_of(snapshot)} is of a {engine} server; {template['kind']} "
                              f"{name_of(template)} runs {body['engine']}")  # fmt: skip
    elif engine:
        body = {"engine": engine}
    else:
        raise PluginError(f"DBSnapshot {name_of(snapshot)} does not say its engine yet and its source "
                          f"{snapshot_source_name(snapshot)} is gone: name a server to copy as NAME")  # fmt: skip
    if info is CACHECLUSTER and body.get("engine") == "memcached":
        raise PluginError("Memcached has no snapshots to restore from")
    return new_object(info, new_name, {**body, "restore": {"fromSnapshot": name_of(snapshot)}})


def snapshot_body(info: KindInfo, source: dict, snapshot_name: str, retain: bool) -> dict:
    """A DBSnapshot of `source` (DBInstance, DBCluster or Redis CacheCluster)."""
    if not info.snapshot_field:
        raise PluginError(f"a {info.kind} cannot be snapshotted: DBSnapshots are of a DBInstance, a DBCluster or "
                          "a Redis CacheCluster")  # fmt: skip
    if spec(source).get("engine") == "memcached":
        raise PluginError("Memcached keeps no data to snapshot")
    body = {"source": {info.snapshot_field: name_of(source)}}
    if retain:
        body["deletionPolicy"] = "Retain"
    return {"apiVersion": API_VERSION_STRING, "kind": "DBSnapshot", "metadata": {"name": snapshot_name}, "spec": body}


def default_snapshot_name(server: str, now: datetime) -> str:
    """NAME-YYYYMMDD-HHMMSS, the server's name shortened so the whole stays a DNS label."""
    suffix = now.strftime("-%Y%m%d-%H%M%S")
    return server[: 63 - len(suffix)].rstrip("-") + suffix
