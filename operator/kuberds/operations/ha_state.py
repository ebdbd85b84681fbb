"""The HA manager's own objects, removed when their server goes.

Patroni keeps its leader lease, dynamic configuration and synchronous state in ConfigMaps it
makes itself (NAME-leader, NAME-config, NAME-sync): labelled like the server's members, with
no owner, so garbage collection never takes them. Left behind, NAME-config's `initialize` key
would make a later server of the same name (its old volumes deleted) wait forever for a leader
to bootstrap. They go last, once every member has stopped: a running member writes them back.
"""

from __future__ import annotations

import kopf

from kuberds.builders import names
from kuberds.builders.meta import Owner
from kuberds.kube import Kube

MEMBERS = "database"  # the component label of the members and of Patroni's ConfigMaps
STOP_WAIT_SECONDS = 5


def remove(kube: Kube, body: dict, members: list[dict]) -> None:
    """Stops the members (their StatefulSet goes; the volumes stay, as always), then deletes the
    ConfigMaps the HA manager left. `members`: the server's pods as the index last saw them."""
    owner = Owner.of(body)
    if members:
        kube.delete("StatefulSet", owner.namespace, names.stateful_set(owner.name))
        raise kopf.TemporaryError(f"waiting for {len(members)} member(s) to stop before their HA state is removed",
                                  delay=STOP_WAIT_SECONDS)  # fmt: skip
    for config_map in kube.list("ConfigMap", owner.namespace, owner.selector(MEMBERS)):
        meta = config_map["metadata"]
        if not meta.get("ownerReferences"):  # kuberds' own have an owner and go with it
            kube.delete("ConfigMap", owner.namespace, meta["name"], uid=meta["uid"])
