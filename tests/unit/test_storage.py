"""What a server says of its volumes: the size they should have, how full the fullest is,
and the StorageFull / StorageLow conditions."""

from __future__ import annotations

import json

from kuberds.builders.status import Observed, phase
from kuberds.contract import AGENT_STATUS_ANNOTATION
from kuberds.operations.status import event_type
from kuberds.operations.storage import VolumeSeen, fullest, volume_conditions, wanted_size
from kuberds.quantity import binary_quantity

GIB, MIB = 2**30, 2**20


def pod(name: str, size: int | None, free: int | None, segments: int | None = None) -> dict:
    report = {"volumeBytes": size, "volumeFreeBytes": free, "archiveSegmentsBehind": segments}
    return {"metadata": {"name": name, "annotations": {AGENT_STATUS_ANNOTATION: json.dumps(report)}}}


def test_the_wanted_size_is_the_spec_or_what_autoscaling_grew_to_whichever_is_larger() -> None:
    assert wanted_size("20Gi", {}) == "20Gi"
    assert wanted_size("20Gi", {"storage": {"autoscaledSize": "30Gi"}}) == "30Gi"
    assert wanted_size("40Gi", {"storage": {"autoscaledSize": "30Gi"}}) == "40Gi"


def test_the_fullest_member_speaks_for_the_volumes() -> None:
    pods = [pod("db-0", 10 * GIB, 5 * GIB), pod("db-1", 10 * GIB, 2 * GIB), pod("db-2", None, None)]
    assert fullest(pods) == VolumeSeen("db-1", 10 * GIB, 2 * GIB, None)
    assert fullest([pod("db-0", None, None), {"metadata": {"name": "db-1"}}]) is None


def test_nothing_is_said_before_an_agent_reported_its_volume() -> None:
    assert volume_conditions(None, autoscaling=False, at_max_size=False) == []


def test_a_volume_with_room_is_neither_full_nor_low() -> None:
    conditions = {c.type: c for c in volume_conditions(VolumeSeen("db-0", GIB, GIB // 2), False, False)}
    assert (conditions["StorageFull"].status, conditions["StorageLow"].status) == ("False", "False")


def test_low_without_autoscaling_warns_with_the_remedy() -> None:
    low = {c.type: c for c in volume_conditions(VolumeSeen("db-0", 10 * GIB, GIB), False, False)}["StorageLow"]
    assert low.status == "True" and low.reason == "LowFreeSpace"
    assert low.message == "db-0's volume has 1.00Gi free of 10.00Gi (10%); raise storage.size (the volumes grow online)"
    # Autoscaling will grow it: not a warning; at its maxSize it is again.
    assert {c.type: c.status for c in volume_conditions(VolumeSeen("db-0", 10 * GIB, GIB), True, False)}[
        "StorageLow"] == "False"  # fmt: skip
    at_max = {c.type: c for c in volume_conditions(VolumeSeen("db-0", 10 * GIB, GIB), True, True)}["StorageLow"]
    assert at_max.status == "True" and at_max.message.endswith("raise storage.autoscaling.maxSize")


def test_a_full_volume_says_so_and_names_unarchived_wal_when_that_fills_it() -> None:
    full = volume_conditions(VolumeSeen("db-0", GIB, 20 * MIB), False, False)[0]
    assert (full.type, full.status, full.reason) == ("StorageFull", "True", "VolumeFull")
    assert (
        full.message
        == "db-0's volume has 20Mi free of 1.00Gi: writes fail; raise storage.size (the volumes grow online)"
    )
    wal = volume_conditions(VolumeSeen("db-0", GIB, 5 * MIB, unarchived_segments=40), True, True)[0]
    assert wal.reason == "UnarchivedWal" and "40 WAL segments are kept until they are archived" in wal.message
    # 1 % of a large volume is the line, not 32 MiB.
    assert volume_conditions(VolumeSeen("db-0", 1000 * GIB, 5 * GIB), False, False)[0].status == "True"


def test_full_is_a_phase_and_becoming_full_or_low_is_a_warning() -> None:
    observed = Observed(desired=1, members=[])
    conditions = [{"type": "Ready", "status": "True"}, {"type": "StorageFull", "status": "True"}]
    assert phase(observed, conditions, paused=False, deleting=False) == "StorageFull"
    assert event_type("StorageFull", "True", None) == "Warning"
    assert event_type("StorageLow", "True", "False") == "Warning"
    assert event_type("StorageLow", "False", "True") == "Normal"
    assert event_type("StorageFull", "False", None) is None


def test_binary_quantities() -> None:
    assert binary_quantity(2 * GIB) == "2Gi" and binary_quantity(1536 * MIB) == "1536Mi"
    assert binary_quantity(1) == "1Mi" and binary_quantity(3 * 2**40) == "3Ti"


def test_wal_between_checkpoints_leaves_a_small_volume_room_for_data() -> None:
    from kuberds.api.classes import DB_INSTANCE_CLASSES
    from kuberds.engines.postgres import Postgres

    size = DB_INSTANCE_CLASSES["db.t3.micro"]
    assert {k: v for k, v in Postgres().parameters(size, {}, "1Gi").items() if "wal_size" in k} == {
        "max_wal_size": "256MB", "min_wal_size": "80MB"}  # fmt: skip
    assert Postgres().parameters(size, {}, "100Gi")["max_wal_size"] == "2048MB"  # RDS's default, at most
    assert Postgres().parameters(size, {"max_wal_size": "4096"}, "1Gi")["max_wal_size"] == "4096"  # the user's


def test_a_resize_on_its_way_is_news_not_a_warning() -> None:
    assert event_type("StorageResized", "False", "True", "Resizing") == "Normal"
    assert event_type("StorageResized", "False", None, "ExpansionNotSupported") == "Warning"


def test_the_rule_waits_for_the_agent_to_see_a_grown_filesystem() -> None:
    from kuberds.operations.storage_autoscaler import filesystem_behind

    claims = [{"metadata": {"name": "data-db-0"}, "status": {"capacity": {"storage": "2Gi"}}}]
    # XFS on a 2Gi volume: 1984 MiB of filesystem; a report of the old 1Gi one is behind.
    assert filesystem_behind(VolumeSeen("db-0", 1984 * MIB, MIB), claims) is None
    assert (
        filesystem_behind(VolumeSeen("db-0", 960 * MIB, MIB), claims) == "waiting for db-0 to see its grown filesystem"
    )
    assert filesystem_behind(None, claims) is None


def test_the_timer_looks_at_servers_with_autoscaling_and_once_more_after_it_is_turned_off() -> None:
    from kuberds.operations.storage_autoscaler import wanted

    assert wanted({"spec": {"storage": {"autoscaling": {"maxSize": "3Gi"}}}})
    assert not wanted({"spec": {"storage": {"size": "1Gi"}}})
    last = {"type": "StorageAutoscaling", "status": "False", "reason": "AtMaxSize"}
    assert wanted({"spec": {}, "status": {"conditions": [last]}})
    assert not wanted({"spec": {}, "status": {"conditions": [{**last, "reason": "Disabled"}]}})
