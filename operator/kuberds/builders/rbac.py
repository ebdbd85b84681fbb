"""The in-pod agent's ServiceAccount, Role and RoleBinding. Pure."""

from __future__ import annotations

from kuberds.builders import names
from kuberds.builders.server import Server


def agent_rbac(server: Server) -> list[dict]:
    name = names.agent(server.name)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": server.meta(name)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": server.meta(name),
            "rules": server.engine.agent_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": server.meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": server.owner.namespace}],
        },
    ]
