"""The ValidatingAdmissionPolicies that ship with the CRDs: rules the API server enforces
itself, so they hold while the operator is down and whatever a client tries. Pure.
"""

from __future__ import annotations

from kuberds import API_GROUP
from kuberds.api.crds import PART_OF
from kuberds.api.v1alpha1 import KINDS
from kuberds.builders.meta import INSTANCE_LABEL
from kuberds.builders.names import AGENT_SUFFIX
from kuberds.contract import ROLE_LABEL


def _policy(name: str, rule: dict, validations: list[dict], conditions: list[dict] | None = None) -> list[dict]:
    """A policy that refuses what fails a validation (each with reason Forbidden), and its binding."""
    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [rule]},
        **({"matchConditions": conditions} if conditions else {}),
        "validations": [{**v, "reason": "Forbidden"} for v in validations],
    }
    meta = {"name": name, "labels": dict(PART_OF)}
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": meta,
         "spec": spec},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": dict(meta), "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]  # fmt: skip


DELETION_POLICY_NAME = "kuberds-deletion-protection"


def deletion_protection_policy() -> list[dict]:
    """Refuses DELETE of a protected server, even while the operator is down."""
    protected = [k.plural for k in KINDS if k.deletion_protected]
    rule = {"apiGroups": [API_GROUP], "apiVersions": ["*"], "operations": ["DELETE"], "resources": protected}
    return _policy(DELETION_POLICY_NAME, rule, [{
        "expression": "!has(oldObject.spec.deletionProtection) || !oldObject.spec.deletionProtection",
        "messageExpression": (
            "oldObject.kind + ' ' + oldObject.metadata.name + ' has spec.deletionProtection: true. "
            "To delete it, first run: kubectl patch ' + oldObject.kind.lowerAscii() + ' ' + "
            "oldObject.metadata.name + ' -n ' + oldObject.metadata.namespace + "
            '\' --type merge -p {"spec":{"deletionProtection":false}}\''
        ),
    }])  # fmt: skip


AGENT_POD_POLICY_NAME = "kuberds-agent-pod-writes"
# The ServiceAccount of the server whose pod this is (RBAC already limits an agent to its own pods).
_POD_AGENT = (
    "'system:serviceaccount:' + oldObject.metadata.namespace + ':' + "
    f"oldObject.metadata.labels['{INSTANCE_LABEL}'] + '{AGENT_SUFFIX}'"
)
_KEPT_LABELS = f"oldObject.metadata.labels.filter(k, k != '{ROLE_LABEL}')"


def agent_pod_policy() -> list[dict]:
    """What an agent may change on its own pods: the role label its HA manager keeps and
    annotations (its reports), nothing else. Without this, an agent could relabel its pod into
    another server's Service selector, or swap the pod's image."""
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}
    by_its_agent = {
        "name": "by-the-pods-own-agent",
        "expression": (
            f"has(oldObject.metadata.labels) && '{INSTANCE_LABEL}' in oldObject.metadata.labels && "
            f"request.userInfo.username == {_POD_AGENT}"
        ),
    }
    return _policy(AGENT_POD_POLICY_NAME, rule, [
        {"expression": "object.spec == oldObject.spec", "message": "a server's agent may not change its pod's spec"},
        {
            "expression": (
                f"has(object.metadata.labels) && {_KEPT_LABELS}.all(k, k in object.metadata.labels && "
                "object.metadata.labels[k] == oldObject.metadata.labels[k]) && "
                f"object.metadata.labels.all(k, k == '{ROLE_LABEL}' || k in oldObject.metadata.labels)"
            ),
            "message": f"a server's agent may change only the {ROLE_LABEL} label of its pod",
        },
        {
            "expression": (
                "(has(object.metadata.ownerReferences) ? object.metadata.ownerReferences : []) == "
                "(has(oldObject.metadata.ownerReferences) ? oldObject.metadata.ownerReferences : [])"
            ),
            "message": "a server's agent may not change its pod's owners",
        },
    ], [by_its_agent])  # fmt: skip


def policies() -> dict[str, list[dict]]:
    """Each policy with its binding, by the file name it ships as."""
    return {
        f"{DELETION_POLICY_NAME}.yaml": deletion_protection_policy(),
        f"{AGENT_POD_POLICY_NAME}.yaml": agent_pod_policy(),
    }
