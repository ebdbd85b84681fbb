"""GitOps with a real Argo CD (e2e.argocd): a DBInstance whose only source is a git repository.

The Application syncs it and shows it Progressing, then Healthy, from kuberds' own health check
(the chart's argocd-customizations, merged into argocd-cm with the README's command); it stays
Synced while the operator writes status, annotations and defaults; a class change committed to
git rolls the server (Progressing again, then Healthy: the time from commit to Healthy is the
figure); and a commit that removes the manifest is pruned by Argo CD and refused by
deletionProtection, the server left running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.kube import wait_for

from e2e.argocd import ArgoCD, GitRepo
from e2e.environment import S3_NAMESPACE
from e2e.manifests import dbinstance, object_store
from e2e.support import E2E, OPERATOR_NAMESPACE, RELEASE

NAMESPACE = "kuberds-e2e-gitops"
APP, DB = "orders-db", "orders"


@pytest.fixture(scope="module")
def e2e(own_namespace: E2E) -> E2E:
    return own_namespace


def servers() -> list[dict]:
    return []  # the server comes from git


@pytest.fixture(scope="module")
def argocd(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    argo = ArgoCD(e2e.cluster, tmp_path_factory.mktemp("argocd"))
    installed = e2e.get("configmap", f"{RELEASE}-argocd-customizations", namespace=OPERATOR_NAMESPACE)
    assert installed, "the chart did not install its Argo CD customizations (argocd.customizations.enabled)"
    argo.install(installed["data"])
    argo.start()
    try:
        yield argo
    finally:
        # An Application without the resources finalizer leaves its objects when deleted: the
        # namespace's teardown lets the server go (protection off).
        e2e.kubectl("delete", "application", APP, "-n", "argocd", "--wait=false", check=False)
        argo.stop()


def manifest(instance_class: str) -> str:
    backup = {"objectStore": {**object_store(S3_NAMESPACE), "path": "e2e-gitops"}, "retentionDays": 1}
    body = dbinstance(NAMESPACE, DB, instanceClass=instance_class, deletionProtection=True, backup=backup)
    return yaml.safe_dump(body, sort_keys=False)


class Timeline:
    """The Application's (sync, health) as Argo CD reports it, each change with its second."""

    def __init__(self, argo: ArgoCD):
        self.argo, self.began, self.seen = argo, time.monotonic(), []

    def look(self) -> dict:
        app = self.argo.app(APP)
        status = app.get("status") or {}
        now = ((status.get("sync") or {}).get("status"), (status.get("health") or {}).get("status"))
        if not self.seen or self.seen[-1][1:] != now:
            self.seen.append((round(time.monotonic() - self.began, 1), *now))
        return app

    def until(self, wanted: tuple[str, str], revision: str, timeout: float, what: str) -> float:
        """Seconds from the timeline's start until the Application, synced to `revision`, shows
        `wanted` (an earlier revision's state does not count)."""

        def reached() -> bool:
            app = self.look()
            synced_to = ((app.get("status") or {}).get("sync") or {}).get("revision")
            return synced_to == revision and self.seen[-1][1:] == wanted

        try:
            wait_for(reached, timeout=timeout, interval=1, what=what)
        except AssertionError as late:  # the timeline as it went, and what Argo CD did meanwhile
            log = self.argo.log_tail("application-controller")
            raise AssertionError(f"{late}\ntimeline {self.seen}\napplication controller:\n{log}") from None
        return self.seen[-1][0]

    def healths(self) -> list[str]:
        return [health for _, _, health in self.seen]


def resource(app: dict, kind: str) -> dict:
    return next(r for r in (app.get("status") or {}).get("resources") or [] if r["kind"] == kind)


def test_a_dbinstance_from_git_syncs_rolls_and_resists_pruning(e2e: E2E, argocd: ArgoCD, tmp_path: Path) -> None:
    repo = GitRepo(tmp_path)
    first = repo.commit({"orders-db.yaml": manifest("db.t3.micro")}, "orders database")
    created = Timeline(argocd)
    e2e.apply(argocd.application(APP, repo.url, ".", NAMESPACE))
    healthy_after = created.until(("Synced", "Healthy"), first, 600, "the new server Synced and Healthy")
    assert "Progressing" in created.healths(), f"never Progressing on the way: {created.seen}"
    e2e.record("gitops: Application applied -> Synced and Healthy (new Single-AZ server), s", healthy_after)

    # Health is ours: the DBInstance's Ready message, as the chart's Lua check words it.
    app = created.look()
    ready = e2e.condition(DB, "Ready")
    assert resource(app, "DBInstance")["health"] == {"status": "Healthy", "message": ready["message"]}

    # No perpetual diff: the operator's status, annotations and the schema's defaults are not
    # drift. Hard refreshes make Argo CD compare again from scratch.
    for _ in range(6):
        e2e.kubectl("annotate", "application", APP, "-n", "argocd", "argocd.argoproj.io/refresh=hard", "--overwrite")
        time.sleep(5)
        app = created.look()
        assert (app["status"]["sync"]["status"], resource(app, "DBInstance")["status"]) == ("Synced", "Synced"), (
            f"drift reported: {app['status'].get('resources')}"
        )

    # A change in git rolls the server; Argo CD sees the commit at once (the refresh a webhook makes).
    second = repo.commit({"orders-db.yaml": manifest("db.t3.small")}, "orders database: db.t3.small")
    rolled = Timeline(argocd)
    argocd.refresh(APP)
    rolled_after = rolled.until(("Synced", "Healthy"), second, 900, "the rolled server Synced and Healthy")
    assert e2e.get("dbinstance", DB)["spec"]["instanceClass"] == "db.t3.small"
    assert "Progressing" in rolled.healths(), f"the rollout was never Progressing: {rolled.seen}"
    # Healthy means rolled: the pod runs the StatefulSet's newest template.
    template = e2e.get("statefulset", DB)["status"]["updateRevision"]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in e2e.pods(DB).values()} == {template}, (
        f"Healthy before the pod was replaced: {rolled.seen}"
    )
    e2e.record("gitops: class change committed -> Healthy again (pod rolled), s", rolled_after)
    e2e.record("gitops: health timeline of the rollout", rolled.seen)

    # Pruned from git: Argo CD deletes, deletionProtection refuses, the server stays.
    repo.commit({"orders-db.yaml": None}, "orders database removed")
    argocd.refresh(APP)

    def refused() -> str | None:
        operation = (argocd.app(APP).get("status") or {}).get("operationState") or {}
        pruned = (operation.get("syncResult") or {}).get("resources") or []
        said = [operation.get("message", "")] + [r.get("message", "") for r in pruned]
        return next((m for m in said if "deletionProtection" in m), None)

    message = wait_for(refused, timeout=180, interval=2, what="Argo CD's prune refused by deletionProtection")
    assert e2e.get("dbinstance", DB) is not None and not e2e.get("dbinstance", DB)["metadata"].get("deletionTimestamp")
    e2e.record("gitops: prune refused", message[:200])
