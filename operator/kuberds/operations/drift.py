"""Hand edits of the children that route or admit traffic (Services, NetworkPolicies) are
undone at once, from their watch events; the rest is put back by the next full pass."""

from __future__ import annotations

from kuberds.builders.compare import foreign_keys_patch, is_subset, merge_patch_restoring
from kuberds.kube import Kube, NamespaceTerminating
from kuberds.operations.status import post_event


def correct(kube: Kube, owner_body: dict, event: dict, kind: str, name: str, desired: dict | None) -> str:
    """Puts the child back as `desired` (None: not ours to correct). Returns what it did."""
    if desired is None or event.get("type") not in ("MODIFIED", "DELETED"):
        return "nothing to correct"
    actual = event.get("object") or {}
    try:
        if event["type"] == "DELETED":
            kube.apply(desired)
        else:
            foreign = foreign_keys_patch(desired, actual)
            if not foreign and is_subset(desired, actual):
                return "unchanged"
            # A merge patch replaces lists whole (ports, rules, subjects) and nulls the keys
            # others added to our maps; server-side apply alone would keep their list items.
            kube.merge_patch(kind, desired["metadata"]["namespace"], name, merge_patch_restoring(desired, foreign))
    except NamespaceTerminating:
        return "nothing: the namespace is being deleted"
    post_event(owner_body, "Normal", "DriftCorrected",
               message=f"{kind} {name} was changed or deleted by hand; restored")  # fmt: skip
    return "restored"


def correct_child(kube: Kube, owner_body: dict, event: dict, kind: str, name: str,
                  objects: list[dict] | None) -> str:  # fmt: skip
    """`correct` with the child as the server's builders make it (`objects`: None when
    kuberds leaves the server alone now)."""
    desired = next((o for o in objects or [] if o["kind"] == kind and o["metadata"]["name"] == name), None)
    return correct(kube, owner_body, event, kind, name, desired)
