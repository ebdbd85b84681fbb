"""DBCluster builders as data: its shape, the endpoints routed from the leader lease, and the
promotion-tier step after a failover."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from kuberds.agent import load
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBClusterSpec
from kuberds.api.v1alpha1.dbcluster import ReaderAutoscaling
from kuberds.builders import dbcluster, reader_autoscaling, routing, settings
from kuberds.builders.meta import Owner
from kuberds.builders.server import Server, endpoint_names
from kuberds.builders.status import Member
from kuberds.builders.tiers import after_failover, before_scale_in, failed_over
from kuberds.config import OperatorConfig
from kuberds.engines import engine_for
from tests.unit.test_builders import assert_golden, by_kind


def make_cluster(**spec) -> Server:
    parsed = parse(DBClusterSpec, {"engine": "postgres", **spec})
    owner = Owner("DBCluster", "ledger", "shop", "0b7c5e0e-0000-4000-8000-00000000000c")
    return dbcluster.cluster_server(owner, parsed, engine_for("postgres"), OperatorConfig(),
                                    claim_size=parsed.storage.size)  # fmt: skip


def member(ordinal: int, *, ready: bool = True, lag: float | None = 0.0, deleting: bool = False,
           synchronous: bool | None = None, ip: str | None = "default") -> Member:  # fmt: skip
    address = f"10.0.0.{ordinal + 10}" if ip == "default" else ip
    return Member(f"ledger-{ordinal}", "replica", f"zone-{ordinal % 3}", ready, deleting=deleting, ip=address,
                  node=f"node-{ordinal}", lag_seconds=lag, synchronous=synchronous)  # fmt: skip


def listed(server: Server, members: list[Member], leader: str | None) -> dict[str, list[str]]:
    return {r.service: [e["targetRef"]["name"] for e in s["endpoints"]]
            for r, s in routing.endpoint_slices(server, members, leader)}  # fmt: skip


# ---------------------------------------------------------------- shape


@pytest.mark.parametrize(("readers", "synchronous", "strict"), [(0, False, False), (1, True, False), (2, True, True)])
def test_durability_follows_the_number_of_members(readers: int, synchronous: bool, strict: bool) -> None:
    server = make_cluster(readers=readers)
    config = settings.agent_config(server)
    assert (server.replicas, config.synchronous, config.synchronous_strict) == (1 + readers, synchronous, strict)


def test_cluster_objects_match_the_golden_file() -> None:
    server = make_cluster(readers=2, customEndpoints=[{"name": "analytics", "staticMembers": [2]}],
                          promotionTiers=[{"member": 2, "promotionTier": 0}])  # fmt: skip
    objects = dbcluster.server_objects(server)
    assert_golden("dbcluster-custom-endpoint.yaml", objects)
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(objects)["Service"]}
    assert set(services) == {"ledger", "ledger-ro", "ledger-analytics", "ledger-pods"}
    assert all("selector" not in services[n] for n in ("ledger", "ledger-ro", "ledger-analytics"))
    assert by_kind(objects)["StatefulSet"][0]["spec"]["replicas"] == 3
    assert server.promotion_tiers == (1, 1, 0)


def test_custom_endpoints_naming_missing_members_are_said() -> None:
    spec = parse(DBClusterSpec, {"engine": "postgres", "readers": 1,
                                 "customEndpoints": [{"name": "a", "excludedMembers": [1, 4]}]})  # fmt: skip
    assert dbcluster.member_problems(spec) == ["customEndpoints a names member(s) 4, but the cluster has members 0-1"]


# ---------------------------------------------------------------- routing


def test_writer_endpoint_follows_the_lease_not_the_role_label() -> None:
    server = make_cluster(readers=2)
    # ledger-0's node died: its label still says primary, but ledger-1 took the lease.
    members = [replace(member(0, ready=False), role="primary"), member(1), member(2)]
    routes = listed(server, members, "ledger-1")
    assert routes["ledger"] == ["ledger-1"]
    assert routes["ledger-ro"] == ["ledger-2"]


def test_no_lease_no_writer_endpoint() -> None:
    server = make_cluster(readers=1)
    assert listed(server, [member(0), member(1)], None)["ledger"] == []


def test_reader_endpoint_leaves_out_lagging_and_unreported_readers_and_falls_back_to_the_writer() -> None:
    server = make_cluster(readers=3, readerMaxLagSeconds=10)
    members = [member(0), member(1, lag=11.0), member(2, lag=None), member(3, lag=2.5)]
    assert listed(server, members, "ledger-0")["ledger-ro"] == ["ledger-3"]
    assert listed(server, members[:3], "ledger-0")["ledger-ro"] == ["ledger-0"]


def test_custom_endpoints_static_excluded_and_any() -> None:
    server = make_cluster(readers=3, customEndpoints=[
        {"name": "reporting", "staticMembers": [2, 3]},
        {"name": "most", "excludedMembers": [3]},
        {"name": "all", "type": "ANY", "excludedMembers": [1]},
        {"name": "writer-only", "type": "READER", "staticMembers": [0]},
    ])  # fmt: skip
    routes = listed(server, [member(0), member(1), member(2), member(3, ready=False)], "ledger-0")
    assert routes["ledger-reporting"] == ["ledger-2"]  # ledger-3 is not ready
    assert routes["ledger-most"] == ["ledger-1", "ledger-2"]
    assert routes["ledger-all"] == ["ledger-0", "ledger-2"]
    assert routes["ledger-writer-only"] == []  # READER never lists the writer


def test_slice_is_kube_proxys_and_a_deleting_writer_only_serves_while_terminating() -> None:
    server = make_cluster(readers=1)
    (_route, writer), *_ = routing.endpoint_slices(server, [member(0, deleting=True), member(1)], "ledger-0")
    labels = writer["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "ledger"
    assert labels["endpointslice.kubernetes.io/managed-by"] == "operator.kuberds.io"
    assert writer["ports"] == [{"name": "postgres", "port": 5432, "protocol": "TCP"}]
    (endpoint,) = writer["endpoints"]
    assert endpoint["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert endpoint["addresses"] == ["10.0.0.10"] and endpoint["zone"] == "zone-0"


def test_leader_is_read_from_patronis_annotation() -> None:
    assert routing.leader_of({"metadata": {"annotations": {"leader": "ledger-2", "ttl": "30"}}}) == "ledger-2"
    assert routing.leader_of({"metadata": {"annotations": {}}}) is None
    assert routing.leader_of(None) is None


# ---------------------------------------------------------------- promotion tiers


def test_tier_decides_the_writer_after_a_failover() -> None:
    members = [member(0, ready=False), member(1, synchronous=True), member(2, synchronous=True)]
    step = after_failover(members, "ledger-1", (0, 2, 0), synchronous=True)
    assert (step.action, step.target.name) == ("switchover", "ledger-2")
    assert step.reason == "writer ledger-1 has tier 2; ledger-2 has tier 0"


def test_a_worse_tier_holding_the_synchronous_standby_is_restarted_so_the_best_can_take_it() -> None:
    members = [member(0), member(1, synchronous=False), member(2, synchronous=True)]
    step = after_failover(members, "ledger-0", (5, 0, 3), synchronous=True)
    assert (step.action, step.target.name) == ("restart", "ledger-2")
    assert step.reason == ("tier-0 ledger-1 not a synchronous standby yet: restarting ledger-2 (synchronous "
                           "standby, tier 3) so that the writer picks one")  # fmt: skip
    # No synchronous standby to make room (it is the best tier's, or not reported): wait.
    waiting = after_failover([member(0), member(1, synchronous=False)], "ledger-0", (5, 0), synchronous=True)
    assert waiting.action == "wait"
    assert waiting.reason == "tier-0 ledger-1 not a synchronous standby yet (writer ledger-0 has tier 5)"


def test_tier_step_does_nothing_when_the_writer_is_best_or_better_members_are_unhealthy() -> None:
    assert after_failover([member(0), member(1)], "ledger-0", (1, 1), True).action == "none"
    unhealthy = [member(0), member(1, ready=False), member(2, lag=None), member(3, deleting=True)]
    step = after_failover(unhealthy, "ledger-0", (3, 0, 0, 0), True)
    assert step.action == "none"
    assert after_failover([member(0)], None, (1,), True).action == "wait"


def test_without_synchronous_mode_the_least_lagging_best_tier_member_is_chosen() -> None:
    members = [member(0), member(1, lag=3.0), member(2, lag=0.5)]
    assert after_failover(members, "ledger-0", (2, 1, 1), synchronous=False).target.name == "ledger-2"


def test_scaling_in_moves_a_leaving_writer_to_the_best_member_that_stays() -> None:
    members = [member(0, synchronous=False), member(1, synchronous=False), member(2), member(3)]
    step = before_scale_in(members, "ledger-3", 2, (1, 0, 1, 1), synchronous=True)
    assert step.action == "wait", "no member that stays is a synchronous standby yet"
    members[0] = member(0, synchronous=True)
    step = before_scale_in(members, "ledger-3", 2, (1, 0, 1, 1), synchronous=True)
    assert (step.action, step.target.name) == ("switchover", "ledger-0"), "a synchronous standby over a tier"
    members[1] = member(1, synchronous=True)
    step = before_scale_in(members, "ledger-3", 2, (1, 0, 1, 1), synchronous=True)
    assert (step.action, step.target.name) == ("switchover", "ledger-1"), "then the best tier"
    assert before_scale_in(members, "ledger-0", 2, (1, 0, 1, 1), synchronous=True).action == "none"


def test_a_cluster_held_while_its_writer_moves_keeps_its_members() -> None:
    server = make_cluster(readers=1)
    held = dbcluster.cluster_server(server.owner, server.spec, server.engine, server.config, claim_size="1Gi",
                                    members=3)  # fmt: skip
    assert (server.replicas, held.replicas) == (2, 3)
    sts = by_kind(dbcluster.server_objects(held))["StatefulSet"][0]["spec"]
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Delete"}


# ---------------------------------------------------------------- reader autoscaling

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def policy(**fields) -> ReaderAutoscaling:
    return parse(ReaderAutoscaling, {"minReaders": 1, "maxReaders": 6, **fields})


def test_target_tracking_scales_out_at_once_to_what_the_load_needs() -> None:
    decision = reader_autoscaling.decide(policy(targetCPUPercent=50), 2, [90.0, 80.0], None, None, T0)
    assert (decision.readers, decision.direction) == (4, "out")
    assert decision.reason == "average cpuPercent 85.0 over 2 reader(s), target 50: 2 → 4 readers"
    capped = reader_autoscaling.decide(policy(targetCPUPercent=10, maxReaders=3), 2, [90.0, 90.0], None, None, T0)
    assert capped.readers == 3


def test_scale_in_is_one_reader_at_a_time_after_its_cooldown() -> None:
    quiet = [5.0, 5.0, 5.0, 5.0]
    recent = T0 - timedelta(seconds=100)
    held = reader_autoscaling.decide(policy(scaleInCooldownSeconds=300), 4, quiet, recent, "out", T0)
    assert held.readers == 4 and "scale-in cooldown (100 s of 300)" in held.reason
    later = reader_autoscaling.decide(policy(scaleInCooldownSeconds=300), 4, quiet, T0 - timedelta(hours=1), "out", T0)
    assert (later.readers, later.direction) == (3, "in")


def test_scale_out_cooldown_only_follows_a_scale_out() -> None:
    busy, recent = [95.0], T0 - timedelta(seconds=10)
    assert reader_autoscaling.decide(policy(), 1, busy, recent, "out", T0).readers == 1
    assert reader_autoscaling.decide(policy(), 1, busy, recent, "in", T0).readers == 2


def test_autoscaling_never_lowers_the_durability_a_cluster_has() -> None:
    idle = reader_autoscaling.decide(policy(minReaders=0), 2, [0.0, 0.0], None, None, T0)
    assert idle.readers == 2, "two readers keep strict synchronous commit: never fewer by autoscaling"
    assert reader_autoscaling.decide(policy(minReaders=0), 1, [0.0], None, None, T0).readers == 1


def test_connections_can_be_the_metric_and_silence_holds() -> None:
    decision = reader_autoscaling.decide(policy(targetConnections=100), 2, [250.0, 150.0], None, None, T0)
    assert decision.readers == 4
    assert reader_autoscaling.decide(policy(), 2, [], None, None, T0).reason == "no reader reports cpuPercent yet"


def test_cpu_meter_reads_cgroup_v2_and_v1(tmp_path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.stat").write_text("usage_usec 2000000\nuser_usec 1\n")
    (v2 / "cpu.max").write_text("50000 100000\n")
    assert load.usage_seconds(v2) == 2.0 and load.cpu_limit(v2) == 0.5
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpuacct.usage").write_text("3000000000\n")
    (v1 / "cpu").mkdir()
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert load.usage_seconds(v1) == 3.0 and load.cpu_limit(v1) == 2.0
    meter = load.CpuMeter(v2)
    assert meter.percent() is None, "the first reading has nothing to compare with"
    assert load.usage_seconds(tmp_path / "none") is None


def test_the_certificate_names_every_custom_endpoint() -> None:
    server = make_cluster(customEndpoints=[{"name": "reporting"}])
    assert "ledger-reporting.shop.svc" in endpoint_names(server)


def test_scaling_never_changes_the_pod_template() -> None:
    """A changed template rolls every pod: the member count must not reach it."""
    templates = {json.dumps(by_kind(dbcluster.server_objects(make_cluster(readers=n)))["StatefulSet"][0]["spec"][
        "template"], sort_keys=True) for n in (0, 1, 2, 5)}  # fmt: skip
    assert len(templates) == 1


def test_a_failover_is_a_new_holder_after_another_even_through_nobody() -> None:
    assert failed_over("ledger-0", "ledger-1", asked=False), "ledger-1 → (nobody) → ledger-0"
    assert not failed_over("ledger-0", "ledger-1", asked=True), "a switchover the operator asked for"
    assert not failed_over("ledger-0", None, asked=False), "the first holder: bootstrap"
    assert not failed_over(None, "ledger-1", asked=False), "released, nobody yet"
    assert not failed_over("ledger-1", "ledger-1", asked=False), "the same holder back"
