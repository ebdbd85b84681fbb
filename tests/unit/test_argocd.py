"""kuberds' Argo CD health checks and actions, run by Argo CD itself: the argocd binary hack/
builds from Argo CD's Go module evaluates them offline (`argocd admin settings
resource-overrides`, the gopher-lua VM and sandbox its application controller uses), read
from the argocd-cm keys the chart renders.

Fixtures are real objects recorded from the cluster and e2e tiers (tests.support.recorder),
trimmed by hand; each kind's health_test.yaml says what Argo CD must make of them, in Argo CD's
resource_customizations format. actions_test.yaml does the same for the actions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.argocd import CUSTOMIZATIONS, FIXTURES, admin, argocd_cm_file, health

KINDS = ("DBInstance", "DBCluster", "ReadReplica", "CacheCluster", "DBSnapshot")
SERVER_KINDS = ("DBInstance", "DBCluster", "ReadReplica", "CacheCluster")


def cases(file: str, key: str) -> list[tuple[str, dict]]:
    found = []
    for kind in KINDS:
        path = FIXTURES / kind / file
        if path.exists():
            found += [(kind, case) for case in (yaml.safe_load(path.read_text()) or {}).get(key) or []]
    return found


def case_id(case: tuple[str, dict]) -> str:
    kind, body = case
    return f"{kind}-{Path(body['inputPath']).stem}" + (f"-{body['action']}" if "action" in body else "")


@pytest.fixture(scope="module")
def argocd_cm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return argocd_cm_file(tmp_path_factory.mktemp("argocd") / "argocd-cm.yaml")


@pytest.mark.parametrize("case", cases("health_test.yaml", "tests"), ids=case_id)
def test_argo_cd_judges_a_recorded_object_as_written(case: tuple[str, dict], argocd_cm: Path) -> None:
    kind, body = case
    fixture = FIXTURES / kind / body["inputPath"]
    assert yaml.safe_load(fixture.read_text())["kind"] == kind
    expected = body["healthStatus"]
    status, message = health(fixture, argocd_cm)
    assert status == expected["status"], f"{fixture.name}: {status} ({message})"
    if "message" in expected:
        assert message == expected["message"]


def test_every_kind_has_fixtures_for_every_health_it_can_show() -> None:
    shown = {}
    for kind, body in cases("health_test.yaml", "tests"):
        shown.setdefault(kind, set()).add(body["healthStatus"]["status"])
    for kind in ("DBInstance", "DBCluster", "ReadReplica", "CacheCluster"):
        assert {"Healthy", "Progressing", "Degraded"} <= shown.get(kind, set()), kind
    assert "Suspended" in set().union(*(shown.get(k, set()) for k in SERVER_KINDS))
    assert {"Healthy", "Progressing", "Degraded"} <= shown.get("DBSnapshot", set())


def test_the_checks_read_conditions_never_the_phase() -> None:
    for script in (CUSTOMIZATIONS / "health").glob("*.lua"):
        code = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())
        assert not re.search(r"\bphase\b", code), f"{script.name} reads status.phase"


@pytest.mark.parametrize("case", cases("actions_test.yaml", "discoveryTests"), ids=case_id)
def test_argo_cd_offers_the_actions_that_can_do_something(case: tuple[str, dict], argocd_cm: Path) -> None:
    kind, body = case
    table = admin("list-actions", str(FIXTURES / kind / body["inputPath"]), argocd_cm=argocd_cm)
    offered = {name: disabled == "true" for name, disabled in (line.split() for line in table.splitlines()[1:]
                                                                if line.strip())}  # fmt: skip
    assert offered == {name: not enabled for name, enabled in body["enabled"].items()}


@pytest.mark.parametrize("case", cases("actions_test.yaml", "actionTests"), ids=case_id)
def test_an_action_changes_what_it_says(case: tuple[str, dict], argocd_cm: Path) -> None:
    kind, body = case
    out = admin("run-action", str(FIXTURES / kind / body["inputPath"]), body["action"], argocd_cm=argocd_cm)
    if "created" in body:  # a new object: Argo CD prints it whole
        created, expected = yaml.safe_load(out.split("Following resource was created:", 1)[1]), body["created"]
        assert (created["kind"], created["spec"]) == (expected["kind"], expected["spec"])
        assert created["metadata"]["name"].startswith(expected["namePrefix"]), created["metadata"]
        return
    changed = [line[1:].strip() for line in out.splitlines() if line.startswith(">")]
    for expected in body["changes"]:
        assert expected in changed, f"{expected!r} not among the changed lines {changed}"


def test_the_chart_installs_them_only_when_asked_and_for_every_kind() -> None:
    from tests.support.argocd import customizations_data
    from tests.support.chart import documents

    assert not [d for d in documents("kuberds", "kuberds-system") if d["metadata"]["name"].endswith("-customizations")]
    keys = set(customizations_data())
    assert keys == {f"resource.customizations.health.kuberds.io_{k}" for k in KINDS} | {
        f"resource.customizations.actions.kuberds.io_{k}" for k in SERVER_KINDS
    }
