"""The in-pod agent's ServiceAccount, Role and RoleBinding. Pure."""

from __future__ import annotations

from kuberds import API_GROUP
from kuberds.builders import names
from kuberds.builders.meta import MANAGED_BY, Owner
from kuberds.builders.server import Server


def _role_and_binding(meta: dict, rules: list[dict], account: str) -> list[dict]:
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": meta["namespace"]}],
        },
    ]


def agent_rbac(server: Server) -> list[dict]:
    return agent_objects(server, server.replicas)


def agent_objects(server, pods: int, secrets: list[str] | None = None) -> list[dict]:
    """The agent's ServiceAccount, and a Role (the engine's rules for these pods, and the
    Secrets it may read, when any) bound to it. `server`: anything with a name, meta() and
    engine (a database server, a cache)."""
    name = names.agent(server.name)
    members = [names.pod(server.name, ordinal) for ordinal in range(pods)]
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": server.meta(name)}
    rules = server.engine.agent_rules(server.name, members, *([secrets] if secrets else []))
    return [account, *_role_and_binding(server.meta(name), rules, name)]


def snapshot_grant(source: Owner, snapshots: list[str]) -> list[dict]:
    """The agent of `source` may write the status of these DBSnapshots (its own) and no other.
    Kept by the DBSnapshot handler as snapshots come; no names, no rule (an empty
    resourceNames would mean every name)."""
    rules = [{"apiGroups": [API_GROUP], "resources": ["dbsnapshots/status"], "verbs": ["get", "patch"],
              "resourceNames": sorted(set(snapshots))}] if snapshots else []  # fmt: skip
    labels = {**source.selector("agent"), **MANAGED_BY, "app.kubernetes.io/part-of": "kuberds"}
    meta = source.metadata(names.agent_snapshots(source.name), labels)
    return _role_and_binding(meta, rules, names.agent(source.name))
