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


def test_every_index_a_handler_asks_for_is_registered() -> None:
    """Kopf passes each index as the keyword of its id: a handler parameter annotated as an
    index that no index is registered under would fail every call of that handler."""
    import ast
    import inspect

    registered = {h.id for h in kopf.get_default_registry()._indexing.get_all_handlers()}
    tree = ast.parse(inspect.getsource(triggers))
    asked = {arg.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
             for arg in node.args.args + node.args.kwonlyargs
             if isinstance(arg.annotation, ast.Attribute) and arg.annotation.attr == "Index"}  # fmt: skip
    assert asked and asked <= registered, f"not registered: {sorted(asked - registered)}"
