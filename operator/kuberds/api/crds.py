"""The five kinds as CustomResourceDefinitions, plus the deletion-protection admission policy.

Pure functions over the typed models; `python -m kuberds.api.generate` writes the results
to crds/, the Helm chart and docs/.
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds import API_GROUP, API_VERSION
from kuberds.api import v1alpha1 as api
from kuberds.api.schema import openapi_schema

PART_OF = {"app.kubernetes.io/part-of": "kuberds"}
CATEGORY = "kuberds"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type
    status: type
    columns: tuple[tuple[str, str, str, int], ...]  # name, type, jsonPath, priority
    scale_replicas: str | None = None  # spec path of a replica count, for the scale subresource
    deletion_protected: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


SERVER_COLUMNS = (
    ("Engine", "string", ".spec.engine", 0),
    ("Version", "string", ".status.engineVersion", 0),
    ("Class", "string", ".spec.instanceClass", 1),
    ("Status", "string", ".status.phase", 0),
    ("Endpoint", "string", ".status.endpoint", 0),
    ("Primary", "string", ".status.currentPrimary", 1),
    ("Age", "date", ".metadata.creationTimestamp", 0),
)

KINDS: tuple[Kind, ...] = (
    Kind(
        "DBInstance", "dbinstances", ("dbi", "rdsi"), api.DBInstanceSpec, api.ServerStatus,
        (*SERVER_COLUMNS[:3], ("Multi-AZ", "boolean", ".spec.multiAZ", 0), *SERVER_COLUMNS[3:]),
        deletion_protected=True,
    ),
    Kind(
        "DBCluster", "dbclusters", ("dbc",), api.DBClusterSpec, api.ServerStatus,
        (*SERVER_COLUMNS[:3], ("Instances", "integer", ".spec.instances", 0), *SERVER_COLUMNS[3:]),
        scale_replicas=".spec.instances", deletion_protected=True,
    ),
    Kind(
        "ReadReplica", "readreplicas", ("rr", "dbrr"), api.ReadReplicaSpec, api.ServerStatus,
        (("Source", "string", ".spec.source.dbInstance", 0), ("Promoted", "boolean", ".spec.promote", 0),
         ("Status", "string", ".status.phase", 0), ("Lag", "number", ".status.replicationLagSeconds", 0),
         ("Endpoint", "string", ".status.endpoint", 0), ("Age", "date", ".metadata.creationTimestamp", 0)),
        deletion_protected=True,
    ),
    Kind(
        "CacheCluster", "cacheclusters", ("cc", "cache"), api.CacheClusterSpec, api.CacheClusterStatus,
        (("Engine", "string", ".spec.engine", 0), ("Version", "string", ".status.engineVersion", 0),
         ("Node Type", "string", ".spec.nodeType", 1), ("Status", "string", ".status.phase", 0),
         ("Endpoint", "string", ".status.endpoint", 0), ("Age", "date", ".metadata.creationTimestamp", 0)),
    ),
    Kind(
        "DBSnapshot", "dbsnapshots", ("dbsnap", "snap"), api.DBSnapshotSpec, api.DBSnapshotStatus,
        (("Instance", "string", ".spec.source.dbInstance", 0), ("Cluster", "string", ".spec.source.dbCluster", 0),
         ("Status", "string", ".status.phase", 0), ("Snapshot Time", "date", ".status.snapshotTime", 0),
         ("Kind", "string", ".status.kind", 1), ("Age", "date", ".metadata.creationTimestamp", 0)),
    ),
)  # fmt: skip
KINDS_BY_NAME = {k.kind: k for k in KINDS}


def crd(kind: Kind) -> dict:
    subresources: dict = {"status": {}}
    if kind.scale_replicas:
        subresources["scale"] = {
            "specReplicasPath": kind.scale_replicas,
            "statusReplicasPath": ".status.readyInstances",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": dict(PART_OF)},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        {"name": name, "type": type_, "jsonPath": path, **({"priority": p} if p else {})}
                        for name, type_, path, p in kind.columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.spec.__kuberds_description__,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(kind.spec),
                                "status": openapi_schema(kind.status),
                            },
                        }
                    },
                }
            ],
        },
    }


DELETION_POLICY_NAME = "kuberds-deletion-protection"


def deletion_protection_policy() -> list[dict]:
    """A ValidatingAdmissionPolicy (and its binding) that refuses DELETE of a protected server.

    Enforced by the API server itself, so protection holds even while the operator is down.
    """
    protected = [k for k in KINDS if k.deletion_protected]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": DELETION_POLICY_NAME, "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [API_GROUP],
                        "apiVersions": ["*"],
                        "operations": ["DELETE"],
                        "resources": [k.plural for k in protected],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "!has(oldObject.spec.deletionProtection) || !oldObject.spec.deletionProtection",
                    "messageExpression": (
                        "oldObject.kind + ' ' + oldObject.metadata.name + ' has spec.deletionProtection: true. "
                        "To delete it, first run: kubectl patch ' + oldObject.kind.lowerAscii() + ' ' + "
                        "oldObject.metadata.name + ' -n ' + oldObject.metadata.namespace + "
                        '\' --type merge -p {"spec":{"deletionProtection":false}}\''
                    ),
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": DELETION_POLICY_NAME, "labels": dict(PART_OF)},
        "spec": {"policyName": DELETION_POLICY_NAME, "validationActions": ["Deny"]},
    }
    return [policy, binding]
