"""DBInstance: one PostgreSQL (later MySQL/MariaDB) server, Multi-AZ or not.

Thin: each function is one trigger's work in kuberds.triggers, over the shared operations.
Waiting is kopf.TemporaryError(delay=…), an invalid spec is kopf.PermanentError, and
nothing here sleeps.
"""

from __future__ import annotations

import functools

from kuberds.api import v1alpha1 as api
from kuberds.builders import dbinstance as build
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.handlers import shared
from kuberds.kube import Kube
from kuberds.operations import final_snapshot, ownership, server_pass

KIND = "DBInstance"


class Builders:
    """The DBInstance's side of the shared server pass (operations.server_pass.ServerKind)."""

    server = staticmethod(build.instance_server)
    objects = staticmethod(build.server_objects)


BUILDERS = Builders()


def spec_of(body: dict) -> api.DBInstanceSpec:
    return shared.spec_of(api.DBInstanceSpec, body)


def reconcile(kube: Kube, config: OperatorConfig, body: dict, pods: list[dict], zones: dict[str, str],
              replicas_of: object = None) -> None:  # fmt: skip
    """Create or correct every object of the instance, then publish status."""
    server_pass.run(kube, config, BUILDERS, body, spec_of(body), pods, zones)


def delete(kube: Kube, config: OperatorConfig, body: dict) -> None:
    final_snapshot.delete(kube, config, body, spec_of(body))
    ownership.forget(Owner.of(body))


# The server for status, endpoints and drift; None when kuberds leaves it alone now.
_known_server = shared.known_server(BUILDERS, spec_of)


refresh = functools.partial(shared.refresh, KIND, _known_server)
switchover = functools.partial(shared.requested_switchover, KIND, _known_server)
check_storage = functools.partial(shared.check_storage, KIND, _known_server)
correct_drift = functools.partial(shared.correct_drift, _known_server, build.server_objects)
