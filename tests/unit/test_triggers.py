"""Trigger wiring that does not need a cluster: what the API server is asked to send."""

from __future__ import annotations

import kopf
from kopf._cogs.structs import references

from kuberds import triggers


def resource(group: str, version: str, plural: str, kind: str) -> references.Resource:
    return references.Resource(group=group, version=version, plural=plural, kind=kind,
                               singular=kind.lower(), namespaced=True)  # fmt: skip


def test_children_are_selected_by_the_api_server() -> None:
    settings = kopf.OperatorSettings()
    for child in triggers.CHILD_RESOURCES:
        settings.watching.label_selectors[child] = triggers.MANAGED_BY_SELECTOR
    selected = [
        resource("", "v1", "pods", "Pod"),
        resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        resource("apps", "v1", "statefulsets", "StatefulSet"),
        resource("", "v1", "services", "Service"),
        resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ]
    for child in selected:
        assert list(settings.watching.label_selectors.collect(child)) == ["app.kubernetes.io/managed-by=kuberds"]
    # The custom resources themselves are users' objects: never filtered by our labels.
    dbinstances = resource("kuberds.io", "v1alpha1", "dbinstances", "DBInstance")
    assert list(settings.watching.label_selectors.collect(dbinstances)) == []
