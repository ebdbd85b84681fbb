"""Redis snapshots as the agents decide them: who takes them, when a daily one is due, which
expire, and DBSnapshot requests before both."""

from __future__ import annotations

from datetime import UTC, datetime

from kuberds.agent.decisions import SnapshotRequest
from kuberds.agent.redis.decide import MASTER, REPLICA, Member
from kuberds.agent.redis.metrics import snapshot_metrics
from kuberds.agent.redis.snapshots import DAILY, MANUAL, Manifest, SnapshotStats, expired, new_id, next_step, taker
from kuberds.api.v1alpha1 import Restore
from kuberds.config import OperatorConfig
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository
from kuberds.handlers.cachecluster import _RestoreOnly
from kuberds.operations import restore

PLAN = BackupPlan(Repository(ObjectStoreTarget("caches"), "/kuberds/shop/queue/uid", "queue"), 3, "03:00-04:00")
IN_WINDOW = datetime(2026, 12, 5, 3, 10, tzinfo=UTC)


def manifest(taken: datetime, kind: str = DAILY, uid: str | None = None) -> Manifest:
    return Manifest(new_id(taken, kind), kind, taken.strftime("%Y-%m-%dT%H:%M:%SZ"), "queue-1", "7.0", 10, 5, "00",
                    True, uid)  # fmt: skip


def request(name: str, label: str | None = None, deleting: bool = False, retain: bool = False,
            approved: bool = False) -> SnapshotRequest:  # fmt: skip
    return SnapshotRequest(name, f"uid-{name}", label, deleting, retain, approved)


def test_the_synced_replica_with_the_lowest_ordinal_takes_snapshots_else_the_primary() -> None:
    primary, synced, syncing = Member("q-0", 0, MASTER, 90, True), Member("q-2", 2, REPLICA, 80, True), Member(
        "q-1", 1, REPLICA, 0, False)  # fmt: skip
    assert taker([primary, syncing, synced]) == "q-2", "a replica still syncing has nothing to save"
    assert taker([primary, syncing]) == "q-0", "no synced replica: the primary forks"
    assert taker([Member("q-0", 0), Member("q-1", 1)]) is None, "nobody answers"


def test_a_daily_snapshot_is_due_once_per_window_on_the_taker_only() -> None:
    due = next_step(IN_WINDOW, PLAN, [], [], "queue-1", "queue-1")
    assert (due.action, due.reason) == ("daily", "the snapshot window 03:00-04:00 is open and today's snapshot is "
                                                 "not taken")  # fmt: skip
    assert next_step(IN_WINDOW, PLAN, [], [], "queue-2", "queue-1").reason == "snapshots are taken on queue-2"
    taken = [manifest(datetime(2026, 12, 5, 3, 1, tzinfo=UTC))]
    assert next_step(IN_WINDOW, PLAN, taken, [], "queue-1", "queue-1").action is None
    yesterday = [manifest(datetime(2026, 12, 4, 3, 1, tzinfo=UTC))]
    assert next_step(IN_WINDOW, PLAN, yesterday, [], "queue-1", "queue-1").action == "daily"
    outside = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
    assert next_step(outside, PLAN, [], [], "queue-1", "queue-1").action is None
    off = BackupPlan(PLAN.repository, 0, PLAN.window)
    assert (
        next_step(IN_WINDOW, off, [], [], "queue-1", "queue-1").reason == "daily snapshots are off (retention 0 days)"
    )


def test_daily_snapshots_past_retention_expire_and_dbsnapshots_never_do() -> None:
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    old, recent = datetime(2026, 12, 6, 3, 1, tzinfo=UTC), datetime(2026, 12, 8, 3, 1, tzinfo=UTC)
    manifests = [manifest(old), manifest(old, MANUAL, "uid-keep"), manifest(recent)]
    assert expired(manifests, now, 3) == [new_id(old, DAILY)]
    step = next_step(now, PLAN, manifests, [], "queue-1", "queue-1")
    assert (step.action, step.argument) == ("expire", new_id(old, DAILY))


def test_requested_snapshots_come_first_and_a_deletion_waits_for_the_operators_approval() -> None:
    requests = [request("nightly"), request("gone", label="20261201T000000Z-manual", deleting=True)]
    assert next_step(IN_WINDOW, PLAN, [], requests, "queue-1", "queue-1").argument == "nightly"
    assert next_step(IN_WINDOW, PLAN, [], requests, "queue-1", "queue-1").action == "manual"
    approved = [request("gone", label="20261201T000000Z-manual", deleting=True, approved=True)]
    removal = next_step(IN_WINDOW, PLAN, [], approved, "queue-1", "queue-1")
    assert (removal.action, removal.argument) == ("remove", "gone")
    kept = [request("gone", label="20261201T000000Z-manual", deleting=True, retain=True, approved=True)]
    assert next_step(IN_WINDOW, PLAN, [], kept, "queue-1", "queue-1").action == "daily", "Retain keeps the RDB"


def test_a_manifest_reads_back_what_it_wrote() -> None:
    written = manifest(IN_WINDOW, MANUAL, "uid-1")
    assert Manifest.from_json(written.to_json()) == written and written.time == IN_WINDOW.replace(second=0)


def test_a_snapshot_of_another_engine_is_refused_by_name() -> None:
    snapshot = {"metadata": {"name": "pg"}, "spec": {"source": {"dbInstance": "db"}},
                "status": {"phase": "Available", "backupID": "20261201-000000F", "engine": "postgres"}}  # fmt: skip
    wanted = _RestoreOnly(Restore(from_snapshot="pg"), "redis")
    resolved = restore.resolve(wanted, restore.RestoreSeen(snapshot), OperatorConfig(), IN_WINDOW)
    assert resolved.problem.reason == "SnapshotOfAnotherEngine"
    assert resolved.problem.message == "DBSnapshot pg holds postgres data, which redis cannot load"


def test_snapshot_metrics_say_what_the_member_took() -> None:
    idle = {m.name: m.samples[0].value for m in snapshot_metrics(SnapshotStats())}
    assert idle == {"kuberds_redis_snapshots": 0, "kuberds_redis_snapshot_failures": 0}
    done = SnapshotStats(taken=2, failed=1, last_time=1_800_000_000.0, last_seconds=3.5, last_bytes=34_244_290)
    seen = {m.name: m.samples[0].value for m in snapshot_metrics(done)}
    assert seen["kuberds_redis_last_snapshot_bytes"] == 34_244_290 and seen["kuberds_redis_snapshots"] == 2
    assert seen["kuberds_redis_last_snapshot_duration_seconds"] == 3.5
