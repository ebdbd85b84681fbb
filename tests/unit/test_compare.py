"""Drift detection: what counts as a hand edit of an object kuberds built."""

from __future__ import annotations

from kuberds.builders.compare import foreign_keys_patch, is_subset, merge_patch_restoring

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "db", "labels": {"a": "1"}},
    "spec": {"selector": {"app": "db", "role": "primary"}, "ports": [{"name": "pg", "port": 5432}]},
}


def live(**spec_changes) -> dict:
    spec = {**SERVICE["spec"], "clusterIP": "198.19.0.9", "type": "ClusterIP", **spec_changes}
    return {
        **SERVICE,
        "metadata": {**SERVICE["metadata"], "resourceVersion": "7"},
        "spec": spec,
        "status": {},
    }


def test_server_defaults_are_not_drift() -> None:
    assert is_subset(SERVICE, live())
    assert foreign_keys_patch(SERVICE, live()) == {}


def test_changed_values_and_list_items_are_drift() -> None:
    assert not is_subset(SERVICE, live(ports=[{"name": "pg", "port": 6000}]))
    assert not is_subset(SERVICE, live(ports=[{"name": "pg", "port": 5432}, {"name": "x", "port": 1}]))
    assert not is_subset(SERVICE, live(selector={"app": "db"}))


def test_keys_added_to_a_selector_are_removed() -> None:
    hijacked = live(selector={"app": "db", "role": "primary", "hijacked": "yes"})
    assert is_subset(SERVICE, hijacked), "a superset looks fine to is_subset…"
    foreign = foreign_keys_patch(SERVICE, hijacked)
    assert foreign == {"spec": {"selector": {"hijacked": None}}}, "…so exact maps are checked separately"
    patch = merge_patch_restoring(SERVICE, foreign)
    assert patch["spec"]["selector"] == {"app": "db", "role": "primary", "hijacked": None}
    assert patch["spec"]["ports"] == SERVICE["spec"]["ports"]
    assert "apiVersion" not in patch and patch["metadata"] == {"labels": {"a": "1"}}
