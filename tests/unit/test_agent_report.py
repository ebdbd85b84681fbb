"""When an agent republishes its report, and what it says of its volume."""

from __future__ import annotations

import os
from pathlib import Path

from kuberds.agent.report import volume_usage, worth_publishing
from kuberds.contract.report import AgentReport

GIB = 2**30


def published(**fields: object) -> dict:
    return AgentReport(role="primary", **fields).to_data()


def test_free_space_is_republished_once_it_moved_half_a_percent_or_64_mib() -> None:
    before = published(volume_bytes=GIB, volume_free_bytes=500 * 2**20)
    assert not worth_publishing(published(volume_bytes=GIB, volume_free_bytes=496 * 2**20), before)
    assert worth_publishing(published(volume_bytes=GIB, volume_free_bytes=494 * 2**20), before)
    big = published(volume_bytes=1000 * GIB, volume_free_bytes=500 * GIB)
    assert worth_publishing(published(volume_bytes=1000 * GIB, volume_free_bytes=500 * GIB - 64 * 2**20), big)
    assert not worth_publishing(published(volume_bytes=1000 * GIB, volume_free_bytes=500 * GIB - 2**20), big)


def test_a_grown_volume_or_a_first_figure_is_always_republished() -> None:
    before = published(volume_bytes=GIB, volume_free_bytes=500 * 2**20)
    assert worth_publishing(published(volume_bytes=2 * GIB, volume_free_bytes=500 * 2**20), before)
    assert worth_publishing(before, published())


def test_volume_usage_is_the_filesystems_as_an_unprivileged_writer_sees_it(tmp_path: Path) -> None:
    size, free = volume_usage(tmp_path)
    stat = os.statvfs(tmp_path)
    assert size == stat.f_blocks * stat.f_frsize and free is not None and 0 <= free <= size
    assert volume_usage(tmp_path / "absent") == (None, None)


def test_segments_waiting_for_the_archive_are_counted_on_disk(tmp_path: Path) -> None:
    from kuberds.agent.postgres.agent import waiting_segments

    assert waiting_segments(tmp_path) is None  # no data directory yet
    status = tmp_path / "pg_wal" / "archive_status"
    status.mkdir(parents=True)
    for name in ("000000010000000000000003.ready", "000000010000000000000004.ready",
                 "000000010000000000000002.done", "00000002.history.ready"):  # fmt: skip
        (status / name).touch()
    assert waiting_segments(tmp_path) == 2
