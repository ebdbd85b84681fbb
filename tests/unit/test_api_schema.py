"""The typed API models and what is generated from them."""

from __future__ import annotations

import pytest

from kuberds.api import v1alpha1 as api
from kuberds.api.crds import crd
from kuberds.api.generate import stale
from kuberds.api.policies import deletion_protection_policy
from kuberds.api.schema import openapi_schema, parse, to_json
from kuberds.api.v1alpha1 import KINDS
from kuberds.codec import camel
from tests.support.kube import ROOT


def walk(schema: dict, path: str = ""):
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if schema.get("items", {}).get("type") == "object":  # scalar items are described by their list
        yield from walk(schema["items"], f"{path}[]")


def test_generated_files_are_up_to_date() -> None:
    assert stale(ROOT) == [], "run `make generate` and commit the result"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_is_documented_and_bounded(kind) -> None:
    for part in (kind.spec, kind.status):
        for path, schema in walk(openapi_schema(part)):
            assert schema.get("description"), f"{kind.kind}{path} has no description"
            if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
                assert "maxLength" in schema, f"{kind.kind}{path}: unbounded string (CEL cost)"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_follows_conventions(kind) -> None:
    definition = crd(kind)
    names = definition["spec"]["names"]
    assert names["categories"] == ["kuberds"] and names["shortNames"]
    version = definition["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Status" in columns and "Age" in columns
    assert version["subresources"]["status"] == {}
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert {"observedGeneration", "lastTransitionTime", "reason"} <= set(conditions["items"]["properties"])


def test_defaults_and_names_follow_rds() -> None:
    schema = openapi_schema(api.DBInstanceSpec)
    props = schema["properties"]
    assert schema["required"] == ["engine"]
    assert props["backup"]["properties"]["retentionDays"] | {"description": ""} == {
        "type": "integer", "description": "", "minimum": 0, "maximum": 35, "default": 7,
    }  # fmt: skip
    assert props["backup"]["default"]["window"] == "03:00-03:30"
    assert "multiAZ" in props and camel("verify_tls") == "verifyTLS"
    immutable = [r for r in props["engine"]["x-kubernetes-validations"] if r["rule"] == "self == oldSelf"]
    assert immutable and "engine cannot change" in immutable[0]["message"]


def test_parse_fills_defaults_and_round_trips() -> None:
    spec = parse(api.DBInstanceSpec, {"engine": "postgres", "multiAZ": True, "storage": {"size": "50Gi"}})
    assert spec.multi_az and spec.storage.size == "50Gi" and spec.backup.retention_days == 7
    assert spec.restore is None and spec.instance_class == "db.t3.micro"
    assert to_json(spec)["storage"] == {"size": "50Gi"}
    assert parse(api.DBInstanceSpec, to_json(spec)) == spec
    with pytest.raises(ValueError, match="engine"):
        parse(api.DBInstanceSpec, {})


def test_deletion_policy_covers_the_protected_kinds() -> None:
    policy, binding = deletion_protection_policy()
    rule = policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["operations"] == ["DELETE"]
    assert set(rule["resources"]) == {"dbinstances", "dbclusters", "readreplicas"}
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
