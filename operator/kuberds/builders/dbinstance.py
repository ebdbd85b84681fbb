"""A DBInstance's objects: one server of one or two pods (Multi-AZ). Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.disruption_budget import disruption_budget
from kuberds.builders.meta import Owner
from kuberds.builders.network_policy import network_policy
from kuberds.builders.proxy import proxy_objects
from kuberds.builders.rbac import agent_rbac
from kuberds.builders.server import SecretRefs, Server
from kuberds.builders.services import services
from kuberds.builders.settings import settings_config_map
from kuberds.builders.statefulset import stateful_set
from kuberds.config import OperatorConfig
from kuberds.contract.settings import BackupPlan, RestorePlan
from kuberds.engines import Engine


def instance_server(owner: Owner, spec, engine: Engine, config: OperatorConfig, *, claim_size: str,
                    backup: BackupPlan | None = None, restore: RestorePlan | None = None,
                    secrets: SecretRefs | None = None) -> Server:  # fmt: skip
    """The server a DBInstance is: Multi-AZ adds one synchronous standby in another zone."""
    return Server(
        owner=owner,
        spec=spec,
        engine=engine,
        config=config,
        claim_size=claim_size,
        master_secret=spec.master_user_secret_name or names.master_secret(owner.name),
        replicas=2 if spec.multi_az else 1,
        synchronous=spec.multi_az,
        backup=backup,
        restore=restore,
        secrets=secrets or SecretRefs(),
    )


def server_objects(server: Server) -> list[dict]:
    """Every object of the server except the generated Secrets, in a safe apply order."""
    return [
        settings_config_map(server),
        *agent_rbac(server),
        *services(server),
        network_policy(server),
        disruption_budget(server),
        stateful_set(server),
        *proxy_objects(server),
    ]
