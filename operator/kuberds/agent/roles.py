"""The role label (contract.ROLE_LABEL) an agent that decides over a Lease writes on its own pod
and, when it takes the primary role, on the other members' pods (the endpoints select on it).
Written only when it changes, and again after LABEL_REFRESH_SECONDS while primary: another
member may have relabelled this pod meanwhile."""

from __future__ import annotations

import time

from kuberds.agent.kube import AgentKube
from kuberds.contract import ROLE_LABEL

LABEL_REFRESH_SECONDS = 10.0


class RoleLabels:
    def __init__(self, kube: AgentKube | None, namespace: str, me: str):
        self.kube, self.namespace, self.me = kube, namespace, me
        self.labelled: str | None = None  # what this pod was last labelled by this agent
        self.labelled_at = 0.0

    def set(self, role: str) -> None:
        """This member's label (a write only when it changes)."""
        if self.labelled != role:
            self.set_on(self.me, role)
            self.labelled, self.labelled_at = role, time.monotonic()

    def refresh(self, role: str) -> None:
        """The primary's label, written again once a while."""
        if time.monotonic() - self.labelled_at > LABEL_REFRESH_SECONDS:
            self.labelled = None
        self.set(role)

    def set_on(self, pod: str, role: str) -> None:
        if self.kube is not None:
            self.kube.merge_patch("Pod", self.namespace, pod, {"metadata": {"labels": {ROLE_LABEL: role}}})
