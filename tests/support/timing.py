"""Where a pytest run's time went, per folder and per module (setup, calls and teardown, so a
module's servers starting counts), printed at the end: the CI budget's growth stays visible.
Both conftests (tests/, e2e/) import these two hooks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULES_SHOWN = 15

_spent: Counter[str] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    started = time.monotonic()
    yield
    _spent[str(Path(item.location[0]))] += time.monotonic() - started


def pytest_terminal_summary(terminalreporter) -> None:
    if not _spent:
        return
    folders: Counter[str] = Counter()
    for module, seconds in _spent.items():
        folders[str(Path(module).parent)] += seconds
    terminalreporter.section("time per folder and slowest modules (setup, calls, teardown)")
    for folder, seconds in folders.most_common():
        terminalreporter.write_line(f"{seconds:8.1f}s  {folder}/")
    for module, seconds in _spent.most_common(MODULES_SHOWN):
        terminalreporter.write_line(f"{seconds:8.1f}s    {module}")
