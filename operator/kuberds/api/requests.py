"""Requests a person makes of a server through an annotation on its object.

`kubectl kuberds switchover`, Argo CD's switchover action and a plain `kubectl annotate` all
write the same annotation; the operator carries the request out, says how it went in an Event,
and removes the annotation. An annotation (not a spec field) because a request is a one-time
act, not a wanted state: a GitOps tool that did not write it sees no drift when it comes and
goes. (Never commit it in a manifest: a tool that puts it back would ask again and again.)
"""

from __future__ import annotations

from kuberds import API_GROUP

# Value: the member (pod name) to hand the primary role to, or ANY_MEMBER for the member the
# HA manager finds best (a synchronous standby when there is one). Not under kuberds.io/: Kopf
# keeps its own state in annotations of that prefix and ignores changes to them.
SWITCHOVER_ANNOTATION = f"requests.{API_GROUP}/switchover-to"
ANY_MEMBER = "any"
