"""A StatefulSet's claim templates cannot change: when a server's volumes have grown, its
StatefulSet is deleted with its pods orphaned and made again with the new size, so a member
made later (a replaced node, a new replica) gets volumes as large as the others'. The new
StatefulSet is the old one with larger templates: it adopts the running pods at their
revision and replaces none.

Between the delete and the create the server has no StatefulSet. Whichever comes first
finishes the job: the pass that deleted it (retried at once), or the refresh that the
StatefulSet's deletion event brings. What is to be created is held in this process; an
operator restarted in that second makes the StatefulSet from the spec instead, as for a
new server.
"""

from __future__ import annotations

import logging

from kuberds.builders.statefulset import claim_template_size
from kuberds.kube import Kube
from kuberds.operations.status import post_event
from kuberds.quantity import to_bytes

log = logging.getLogger("kuberds")

_pending: dict[tuple[str, str], dict] = {}  # (namespace, StatefulSet name) → the new StatefulSet


def replace(kube: Kube, body: dict, new: dict) -> None:
    """Deletes the live StatefulSet (pods kept); `new` is made by `complete` once it is gone."""
    meta = new["metadata"]
    _pending[(meta["namespace"], meta["name"])] = new
    kube.delete("StatefulSet", meta["namespace"], meta["name"], orphan=True)
    size = claim_template_size(new)
    log.info("StatefulSet %s/%s: re-creating it with %s claim templates", meta["namespace"], meta["name"], size)
    post_event(body, "Normal", "VolumeTemplateUpdated", f"StatefulSet {meta['name']} is re-created with {size} "
               "claim templates, its pods kept: a member made from now on gets volumes of that size")  # fmt: skip


def complete(kube: Kube, live: dict | None, namespace: str, name: str) -> dict | None:
    """The StatefulSet as it should be seen: the new one once the old one is gone (made
    here), the live one otherwise (still being deleted: the caller waits)."""
    new = _pending.get((namespace, name))
    if new is None:
        return live
    if live is None:
        live, _ = kube.create_if_absent(new)
    elif live["metadata"].get("deletionTimestamp"):
        return live
    if to_bytes(claim_template_size(live)) >= to_bytes(claim_template_size(new)):
        _pending.pop((namespace, name), None)
    return live
