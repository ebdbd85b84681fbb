"""Storage autoscaling at work: a timer per server feeds the agents' free-space figures into
the server's history, asks the rule (operations.autoscaling) and, when it says grow, asks
every volume of the server for the new size together.

The history lives in this process: after an operator restart the rule needs a fresh low
run (5 minutes by default) before it grows anything, as RDS waits for 5 minutes of low
storage. The size autoscaling chose is kept in status.storage.autoscaledSize, so the spec
stays what its author (or Git) wrote.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from kuberds.builders.server import Server
from kuberds.builders.statefulset import with_claim_size
from kuberds.builders.status import FALSE, TRUE, UNKNOWN, Condition
from kuberds.config import OperatorConfig
from kuberds.kube import Kube
from kuberds.metrics import STORAGE_GROWTHS
from kuberds.operations import autoscaling, claim_template, storage
from kuberds.operations.server_status import publish_server_status
from kuberds.operations.status import parse_time, post_event
from kuberds.quantity import binary_quantity, to_bytes

log = logging.getLogger("kuberds")

CONDITION = "StorageAutoscaling"
DISABLED = "Disabled"  # autoscaling taken out of the spec after it was on
# The rule's reasons, and whether each means autoscaling can do its job (False: it cannot
# grow a volume that needs it, which is worth a Warning).
STATUS_OF = {
    autoscaling.GROWING: TRUE,
    autoscaling.WATCHING: TRUE,
    autoscaling.LOW_NOT_LONG_ENOUGH: TRUE,
    autoscaling.NO_SAMPLES: UNKNOWN,
    autoscaling.COOLDOWN: FALSE,
    autoscaling.AT_MAX_SIZE: FALSE,
}

# A filesystem holds at least this share of its volume (XFS's log, ext4's tables and journal):
# one reported smaller has not been grown yet.
FILESYSTEM_SHARE = 0.85

_histories: dict[tuple[str, str, str], autoscaling.History] = {}


def policy(server: Server, config: OperatorConfig) -> autoscaling.Policy:
    spec = server.spec.storage.autoscaling
    assert spec is not None
    low, cooldown = timedelta(seconds=config.storage_low_seconds), timedelta(seconds=config.storage_cooldown_seconds)
    return autoscaling.Policy(
        max_bytes=to_bytes(spec.max_size),
        threshold_percent=spec.free_space_threshold_percent,
        increment_percent=spec.increment_percent,
        floor_bytes=to_bytes(config.storage_growth_floor),
        low_for=low,
        cooldown=cooldown,
        trend_window=timedelta(seconds=config.storage_trend_seconds),
        horizon=timedelta(seconds=config.storage_horizon_seconds),
    )


def resizing(claims: list[dict], wanted: str) -> str | None:
    """A message while a volume has not yet reached the size asked of it."""
    short = [c["metadata"]["name"] for c in claims if to_bytes(capacity(c) or 0) < to_bytes(wanted)]
    return f"waiting for {', '.join(sorted(short))} to grow to {wanted}" if short else None


def filesystem_behind(volume: storage.VolumeSeen | None, claims: list[dict]) -> str | None:
    """A message while the fullest member still reports a filesystem well under its volume's
    capacity (grown, but not yet seen by its agent): its free share would judge the old size."""
    capacities = [to_bytes(c) for c in map(capacity, claims) if c]
    if volume is None or not capacities or volume.size_bytes >= FILESYSTEM_SHARE * min(capacities):
        return None
    return f"waiting for {volume.member} to see its grown filesystem"


def capacity(claim: dict) -> str | None:
    return ((claim.get("status") or {}).get("capacity") or {}).get("storage")


def wanted(body: dict) -> bool:
    """Whether a server needs a look: autoscaling on, or just turned off (its condition
    still says what autoscaling last decided)."""
    if ((body.get("spec") or {}).get("storage") or {}).get("autoscaling"):
        return True
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == CONDITION and c.get("reason") != DISABLED for c in conditions)


def check(kube: Kube, config: OperatorConfig, key: tuple[str, str, str], body: dict, server: Server,
          stateful_set: dict | None, pods: list[dict], claims: list[dict], zones: dict[str, str],
          now: datetime | None = None) -> str:  # fmt: skip
    """One look at a server's volumes: the StorageAutoscaling condition, and a growth when
    the rule says so. Returns what it did."""
    now = now or datetime.now(UTC)
    if server.spec.storage.autoscaling is None:  # turned off: the condition says so, once
        _histories.pop(key, None)
        off = Condition(CONDITION, FALSE, DISABLED, "spec.storage.autoscaling is not set")
        publish_server_status(kube, body, server, pods, zones, [off])
        return "autoscaling off"
    rule = policy(server, config)
    history = _histories.setdefault(key, autoscaling.History(keep=max(rule.trend_window, rule.low_for * 2)))
    volume = storage.fullest(pods)
    if volume is not None:
        history.add(autoscaling.Sample(now, volume.size_bytes, volume.free_bytes))
    status = body.get("status") or {}
    wanted = storage.wanted_size(server.spec.storage.size, status)
    waiting = resizing(claims, wanted) or filesystem_behind(volume, claims)
    if waiting:
        condition = Condition(CONDITION, TRUE, "Resizing", waiting)
        publish_server_status(kube, body, server, pods, zones, [condition])
        return waiting
    allocated = max([to_bytes(wanted), *(to_bytes(c["spec"]["resources"]["requests"]["storage"]) for c in claims)])
    grown_at = (status.get("storage") or {}).get("lastGrowTime")
    decision = autoscaling.decide(history.samples, allocated, parse_time(grown_at) if grown_at else None, now, rule)
    condition = Condition(CONDITION, STATUS_OF[decision.reason], decision.reason, decision.message)
    updates = None
    if decision.grow_to_bytes is not None:
        condition, updates = grow(kube, body, stateful_set, claims, binary_quantity(decision.grow_to_bytes), decision,
                                  now)  # fmt: skip
    publish_server_status(kube, body, server, pods, zones, [condition], storage_updates=updates)
    return decision.message


def grow(kube: Kube, body: dict, stateful_set: dict | None, claims: list[dict], size: str,
         decision: autoscaling.Decision, now: datetime) -> tuple[Condition, dict | None]:  # fmt: skip
    """Asks every claim for `size`, unless one's StorageClass cannot expand volumes; then the
    StatefulSet's claim templates too."""
    classes = {c: kube.get("StorageClass", None, c) for c in storage.classes_to_read(claims, size)}
    growth = storage.plan(size, claims, classes)
    if growth.condition is not None:
        return Condition(CONDITION, FALSE, growth.condition.reason, growth.condition.message), None
    namespace = body["metadata"]["namespace"]
    for claim, patch in growth.patches:
        kube.merge_patch("PersistentVolumeClaim", namespace, claim, patch)
    if stateful_set is not None:  # the index keeps only part of it: the whole one is re-made
        live = kube.get("StatefulSet", namespace, stateful_set["metadata"]["name"])
        if live is not None and not live["metadata"].get("deletionTimestamp"):
            claim_template.replace(kube, body, with_claim_size(live, size))
    post_event(body, "Normal", "StorageAutoscaled", decision.message)
    STORAGE_GROWTHS.labels(body["kind"]).inc()
    log.info("%s %s/%s: %s", body["kind"], namespace, body["metadata"]["name"], decision.message)
    updates = {"autoscaledSize": size, "lastGrowTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return Condition(CONDITION, TRUE, decision.reason, decision.message), updates
