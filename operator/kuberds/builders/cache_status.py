"""A CacheCluster's status as the builders derive it: its members, and the conditions that say
whether it serves, how it is protected (TLS, snapshots) and whether its restore is done. Pure."""

from __future__ import annotations

from kuberds.builders.cache import Cache, pod_ready
from kuberds.builders.status import TRUE, Condition
from kuberds.contract import ROLE_LABEL


def member(cache: Cache, pod: dict, zones: dict[str, str]) -> dict:
    """A pod in status: its role is the agents' label (Redis), or "node" (Memcached)."""
    node = (pod.get("spec") or {}).get("nodeName")
    labels = pod["metadata"].get("labels") or {}
    role = labels.get(ROLE_LABEL, "unknown") if any(e.role for e in cache.engine.endpoints) else "node"
    out = {"name": pod["metadata"]["name"], "role": role,
           "ready": pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")}  # fmt: skip
    if node and zones.get(node):
        out["zone"] = zones[node]
    return out


def tls_condition(cache: Cache) -> Condition:
    """Where TLS is served and with which certificate, or why it is not."""
    if not cache.spec.tls.enabled:
        return Condition("TLS", "False", "Disabled", "spec.tls.enabled is false")
    if cache.tls_secret is None:
        return Condition("TLS", "False", "NotOffered", f"{cache.engine.name} serves TLS only with tls.require: true "
                         "(TLS only, the configuration endpoint too); the nodes serve plain TCP now")  # fmt: skip
    where = (f"only TLS on port {cache.port}" if cache.spec.tls.require
             else f"TLS on port {cache.tls_port} beside plain TCP on {cache.port}")  # fmt: skip
    whose = "issued by the cluster's CA" if cache.issues_certificate else "the user's"
    return Condition("TLS", TRUE, "Enabled", f"{where}, replication too; certificate in Secret {cache.tls_secret} "
                     f"({whose})")  # fmt: skip


def snapshots_condition(cache: Cache) -> Condition:
    """Where snapshots go and when, or why there are none."""
    days, store = cache.spec.snapshots.retention_days, cache.snapshot_store
    if not cache.engine.snapshots:
        return Condition("Snapshots", "False", "Disabled", f"{cache.engine.name} keeps no data to snapshot")
    if store is None:
        reason, why = ("NoObjectStore", "snapshots.retentionDays is set, but ") if days else ("Disabled", "")
        return Condition("Snapshots", "False", reason, f"{why}there is no object store (snapshots.objectStore, or "
                         "the operator's default): no snapshot can be taken")  # fmt: skip
    where = f"s3://{store.bucket}/{cache.snapshot_plan.repository.path.strip('/')}/snapshots"
    if not days:
        return Condition("Snapshots", "False", "Disabled", f"no daily snapshots (retentionDays 0); DBSnapshots go "
                         f"to {where}")  # fmt: skip
    return Condition("Snapshots", TRUE, "Scheduled", f"daily in {cache.spec.snapshots.window} UTC, kept {days} "
                     f"days, taken on a replica, to {where}")  # fmt: skip


def restored_condition(cache: Cache, primary: str | None, conditions: list[dict]) -> list[Condition]:
    """A restored cluster is Restored once its first primary serves (it loaded the RDB before
    it answered); said once, then kept."""
    if cache.spec.restore is None:
        return []
    source = cache.spec.restore.from_snapshot
    if primary or any(c.get("type") == "Restored" and c.get("status") == TRUE for c in conditions):
        return [Condition("Restored", TRUE, "SnapshotLoaded", f"the data of DBSnapshot {source}")]
    return [Condition("Restored", "False", "Restoring", f"member 0 loads DBSnapshot {source} before it starts")]


def availability(ready: int, desired: int) -> list[Condition]:
    return [
        Condition("Available", TRUE if ready else "False", "NodesReady" if ready else "NoNodeReady",
                  f"{ready}/{desired} nodes ready"),
        Condition("Ready", TRUE if ready >= desired else "False",
                  "AllNodesReady" if ready >= desired else "NodesNotReady", f"{ready}/{desired} nodes ready"),
    ]  # fmt: skip
