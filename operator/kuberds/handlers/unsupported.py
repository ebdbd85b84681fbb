"""Kinds whose API is defined but whose reconciler has not landed yet (DBCluster,
ReadReplica, CacheCluster): accepted, and told so in status and an Event, never ignored."""

from __future__ import annotations

from kuberds.builders.status import FALSE, Condition
from kuberds.config import OperatorConfig
from kuberds.kube import Kube
from kuberds.operations.status import publish_status


def reconcile(kube: Kube, config: OperatorConfig, body: dict) -> None:
    publish_status(kube, body, [Condition("Reconciled", FALSE, "NotImplemented",
                   f"kuberds does not reconcile {body['kind']} objects yet; nothing was created")],
                   fixed_phase="Unsupported")  # fmt: skip
