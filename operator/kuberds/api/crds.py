"""The five kinds as CustomResourceDefinitions (the admission policies shipped with them: policies.py).

Pure functions over the typed models; `python -m kuberds.api.generate` writes the results
to crds/, the Helm chart and docs/.
"""

from __future__ import annotations

from kuberds import API_GROUP, API_VERSION
from kuberds.api.kinds import Kind
from kuberds.api.schema import openapi_schema

PART_OF = {"app.kubernetes.io/part-of": "kuberds"}
CATEGORY = "kuberds"


def crd(kind: Kind) -> dict:
    subresources: dict = {"status": {}}
    if kind.scale:
        spec_path, status_path, selector_path = kind.scale
        subresources["scale"] = {
            "specReplicasPath": spec_path,
            "statusReplicasPath": status_path,
            "labelSelectorPath": selector_path,
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
                            **(
                                {"x-kubernetes-validations": [r.as_schema() for r in kind.object_rules]}
                                if kind.object_rules
                                else {}
                            ),
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
