"""A name held by an object that is not the server's is a conflict, never a takeover.

Server-side apply with force would overwrite a Service, Secret or ConfigMap that a user (or
another server) made under the same name, and garbage collection would then delete it with
the server. So before kuberds writes a name for the first time in this process, it reads
what holds the name; once a write has shown the object to be the server's, later passes
skip the read.
"""

from __future__ import annotations

import threading

from kuberds.builders.meta import INSTANCE_LABEL, MANAGED_BY, Owner
from kuberds.builders.status import Condition
from kuberds.operations.secrets import not_reconciled

Key = tuple[str, str, str]  # kind, namespace, name

_confirmed: dict[Key, str] = {}  # → the uid of the server the object was seen to belong to
_lock = threading.Lock()


def _key(obj: dict) -> Key:
    return obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]


def unconfirmed(owner: Owner, objects: list[dict]) -> list[Key]:
    """The names this process has not yet seen held by the server's own objects."""
    with _lock:
        return [_key(o) for o in objects if _confirmed.get(_key(o)) != owner.uid]


def belongs(obj: dict, owner: Owner) -> bool:
    """Made for this server: its controller reference, or (the few objects left unowned on
    purpose, like the backup key that outlives the server) kuberds' labels for its name."""
    meta = obj.get("metadata") or {}
    references = meta.get("ownerReferences") or []
    if references:
        return any(r.get("controller") and r.get("uid") == owner.uid for r in references)
    labels = meta.get("labels") or {}
    return labels.get(INSTANCE_LABEL) == owner.name and MANAGED_BY.items() <= labels.items()


def conflict(owner: Owner, objects: list[dict], existing: dict[Key, dict | None]) -> Condition | None:
    """NameConflict naming the first object whose name another object holds. Pure."""
    for obj in objects:
        held = existing.get(_key(obj))
        if held is not None and not belongs(held, owner):
            kind, _, name = _key(obj)
            references = (held.get("metadata") or {}).get("ownerReferences") or []
            holder = next(((r.get("kind"), r.get("name")) for r in references if r.get("controller")), None)
            if holder == (owner.kind, owner.name):
                whose = f"it belongs to an earlier {owner.kind} of this name, still being removed"
            elif holder:
                whose = f"it belongs to {holder[0]} {holder[1]}"
            else:
                whose = "kuberds did not make it for this server"
            return not_reconciled("NameConflict", f"{kind} {name} already exists and {whose}: kuberds does not "
                                  f"take it over; delete it, or give this {owner.kind} another name")  # fmt: skip
    return None


def confirm(owner: Owner, written: dict | None) -> None:
    """After a write: the object as the API server returned it."""
    if written and belongs(written, owner):
        with _lock:
            _confirmed[(written.get("kind") or "", owner.namespace, written["metadata"]["name"])] = owner.uid


def forget(owner: Owner) -> None:
    """The server is gone: its names are free for another."""
    with _lock:
        for key in [k for k, uid in _confirmed.items() if uid == owner.uid]:
            del _confirmed[key]
