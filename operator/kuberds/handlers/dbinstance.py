"""DBInstance: one PostgreSQL (later MySQL/MariaDB) server, Multi-AZ or not.

Thin: each function is one trigger's work in kuberds.triggers, over the shared operations.
Waiting is kopf.TemporaryError(delay=…), an invalid spec is kopf.PermanentError, and
nothing here sleeps.
"""

from __future__ import annotations

import kopf

from kuberds.api import v1alpha1 as api
from kuberds.api.schema import parse
from kuberds.builders import dbinstance as build
from kuberds.builders.meta import Owner
from kuberds.builders.server import Server
from kuberds.config import OperatorConfig
from kuberds.engines import engine_for
from kuberds.kube import Kube
from kuberds.operations import drift, final_snapshot, ownership, rollout, server_pass, storage_autoscaler

KIND = "DBInstance"


class Builders:
    """The DBInstance's side of the shared server pass (operations.server_pass.ServerKind)."""

    server = staticmethod(build.instance_server)
    objects = staticmethod(build.server_objects)


BUILDERS = Builders()


def spec_of(body: dict) -> api.DBInstanceSpec:
    try:
        return parse(api.DBInstanceSpec, body.get("spec"))
    except (ValueError, TypeError) as error:  # the schema normally refuses this first
        raise kopf.PermanentError(f"invalid spec: {error}") from error


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str],
              replicas_of: object = None) -> None:  # fmt: skip
    """Create or correct every object of the instance, then publish status."""
    server_pass.run(kube, config, BUILDERS, body, spec_of(body), pods, zones)


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    final_snapshot.delete(kube, config, body, spec_of(body))
    ownership.forget(Owner.of(body))


def _known_server(config: OperatorConfig, body: dict, stateful_set: dict | None) -> Server | None:
    """The server for status and drift; None when kuberds leaves it alone now."""
    spec = spec_of(body)
    if spec.automation_paused or engine_for(spec.engine) is None or body["metadata"].get("deletionTimestamp"):
        return None
    return server_pass.known_server(BUILDERS, body, spec, config, stateful_set)


def refresh(kube: Kube, config: OperatorConfig, namespace: str, name: str, read: rollout.Read) -> str:
    """Members changed: status, and one rolling step."""
    return rollout.refresh(kube, (KIND, namespace, name), read, lambda body, sts: _known_server(config, body, sts))


def check_storage(kube: Kube, config: OperatorConfig, body: dict, stateful_set: dict | None, pods: list[dict],
                  claims: list[dict], zones: dict[str, str]) -> str:  # fmt: skip
    """The volumes' free space: storage autoscaling's look."""
    server = _known_server(config, body, stateful_set)
    if server is None:
        return "nothing: paused, unsupported or deleting"
    key = (KIND, body["metadata"]["namespace"], body["metadata"]["name"])
    return storage_autoscaler.check(kube, config, key, body, server, stateful_set, pods, claims, zones)


def correct_drift(kube: Kube, config: OperatorConfig, body: dict, event: dict, kind: str, name: str) -> str:
    """A Service or NetworkPolicy of the instance changed or vanished: put it back."""
    server = _known_server(config, body, None)
    return drift.correct_child(kube, body, event, kind, name, build.server_objects(server) if server else None)
