"""The DBInstance builders, tested as data (a golden file plus the properties that matter)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.builders import dbinstance, names, rbac, secrets, settings
from kuberds.builders.certificates import KeyPair
from kuberds.builders.disruption_budget import disruption_budget
from kuberds.builders.meta import Owner
from kuberds.builders.network_policy import network_policy
from kuberds.builders.server import SecretRefs, Server, endpoint_names
from kuberds.builders.snapshot import final_snapshot
from kuberds.builders.statefulset import stateful_set
from kuberds.config import OperatorConfig
from kuberds.contract import TLS_DIR
from kuberds.engines import engine_for

GOLDEN = Path(__file__).parent / "golden"


def make_server(**spec) -> Server:
    parsed = parse(DBInstanceSpec, {"engine": "postgres", **spec})
    owner = Owner("DBInstance", "orders", "shop", "0b7c5e0e-0000-4000-8000-000000000001")
    return dbinstance.instance_server(owner, parsed, engine_for("postgres"), OperatorConfig(),
                                      claim_size=parsed.storage.size)  # fmt: skip


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def assert_golden(name: str, objects: list[dict]) -> None:
    """The objects as the golden file has them (KUBERDS_UPDATE_GOLDEN=1 rewrites it)."""
    text = yaml.safe_dump_all(objects, sort_keys=True)
    golden = GOLDEN / name
    if os.environ.get("KUBERDS_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "builder output changed; review, then rerun with KUBERDS_UPDATE_GOLDEN=1"


def test_multi_az_objects_match_the_golden_file() -> None:
    assert_golden("dbinstance-multiaz.yaml",
                  dbinstance.server_objects(make_server(multiAZ=True, parameters={"work_mem": "16MB"})))  # fmt: skip


def test_every_object_is_owned_and_labelled() -> None:
    for obj in dbinstance.server_objects(make_server()):
        meta = obj["metadata"]
        assert meta["ownerReferences"][0]["uid"].startswith("0b7c5e0e") and meta["ownerReferences"][0]["controller"]
        assert meta["namespace"] == "shop"
        assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                "app.kubernetes.io/part-of", "app.kubernetes.io/component"} <= set(meta["labels"])  # fmt: skip


@pytest.mark.parametrize(("multi_az", "replicas", "spread"), [(False, 1, "ScheduleAnyway"), (True, 2, "DoNotSchedule")])
def test_zone_spread_is_required_only_for_multi_az(multi_az: bool, replicas: int, spread: str) -> None:
    sts = by_kind(dbinstance.server_objects(make_server(multiAZ=multi_az)))["StatefulSet"][0]
    assert sts["spec"]["replicas"] == replicas
    constraint = sts["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert (constraint["topologyKey"], constraint["whenUnsatisfiable"]) == (
        "topology.kubernetes.io/zone",
        spread,
    )


def test_pods_meet_pod_security_restricted() -> None:
    pod = by_kind(dbinstance.server_objects(make_server()))["StatefulSet"][0]["spec"]["template"]["spec"]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    container = pod["containers"][0]["securityContext"]
    assert container == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                         "capabilities": {"drop": ["ALL"]}}  # fmt: skip


def test_statefulset_keeps_volumes_and_rolls_under_operator_control() -> None:
    spec = by_kind(dbinstance.server_objects(make_server()))["StatefulSet"][0]["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_resources_follow_the_instance_class() -> None:
    sts = by_kind(dbinstance.server_objects(make_server(instanceClass="db.r6.large")))["StatefulSet"][0]
    resources = sts["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "2", "memory": "16Gi"}, "limits": {"cpu": "2", "memory": "16Gi"}}


def test_routed_services_select_no_pods_and_the_headless_one_selects_every_member() -> None:
    services = {s["metadata"]["name"]: s for s in by_kind(dbinstance.server_objects(make_server(port=6432)))["Service"]}
    # kuberds writes the EndpointSlices of the writer and reader from the leader lease.
    assert "selector" not in services["orders"]["spec"] and "selector" not in services["orders-ro"]["spec"]
    assert services["orders"]["spec"]["ports"][0]["targetPort"] == 6432
    assert services["orders-pods"]["spec"]["clusterIP"] == "None"
    assert services["orders-pods"]["spec"]["selector"]["app.kubernetes.io/instance"] == "orders"
    assert services["orders"]["spec"]["ports"][0]["port"] == 6432


def test_network_policy_admits_only_what_must_reach_the_database() -> None:
    server = make_server(network={"allowedClients": [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]})
    policy = network_policy(server)["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    peers, operator, clients, scrapes = policy["ingress"]
    assert [p["port"] for p in peers["ports"]] == [5432, 8008]
    # The operator's pods reach only the HA API (switchovers); not the rest of their namespace.
    assert [p["port"] for p in operator["ports"]] == [8008]
    operator_namespace = {"kubernetes.io/metadata.name": "kuberds-system"}
    assert operator["from"] == [{"namespaceSelector": {"matchLabels": operator_namespace}, "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "kuberds", "app.kubernetes.io/component": "operator"}}}]  # fmt: skip
    assert {"namespaceSelector": {"matchLabels": {"team": "web"}, "matchExpressions": []}} in clients["from"]
    assert {"podSelector": {}} not in clients["from"], "with allowedClients, the namespace is not open"
    assert [p["port"] for p in scrapes["ports"]] == [9187]


def test_parameters_are_sized_from_the_class_and_user_wins() -> None:
    config = settings.settings_config_map(make_server(instanceClass="db.m6.large", parameters={"work_mem": "64MB"}))
    parameters = yaml.safe_load(config["data"]["agent.json"])["parameters"]
    assert parameters["shared_buffers"] == "2048MB"  # a quarter of 8Gi
    assert parameters["max_connections"] == "901"  # RDS: memory / 9531392
    assert parameters["work_mem"] == "64MB"


def test_single_az_budget_blocks_voluntary_eviction_multi_az_allows_one() -> None:
    assert disruption_budget(make_server())["spec"]["minAvailable"] == 1
    assert disruption_budget(make_server(multiAZ=True))["spec"]["maxUnavailable"] == 1


def test_master_secret_and_final_snapshot() -> None:
    secret = secrets.master_secret(make_server(masterUsername="shopadmin"), "s3cret")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["stringData"] == {"username": "shopadmin", "password": "s3cret"}
    name = names.final_snapshot("orders", "2026-11-27T19:22:14Z")
    assert name == "orders-final-20261127-192214"
    snapshot = final_snapshot(make_server().owner, name)
    assert snapshot["spec"] == {"source": {"dbInstance": "orders"}}
    assert "ownerReferences" not in snapshot["metadata"]


def test_backups_go_to_a_path_keyed_by_uid_with_secrets_by_reference() -> None:
    spec = parse(
        DBInstanceSpec,
        {
            "engine": "postgres",
            "backup": {
                "retentionDays": 3,
                "objectStore": {
                    "bucket": "backups",
                    "endpoint": "https://s3.local:8443",
                    "credentialsSecretName": "s3",
                    "path": "team/",
                },
            },
        },
    )
    owner = Owner("DBInstance", "orders", "shop", "uid-1")
    plan = settings.backup_plan(owner, spec, spec.backup.object_store)
    assert plan.repository.path == "/team/shop/orders/uid-1" and plan.repository.stanza == "orders"
    assert plan.repository.encrypted and plan.retention_days == 3
    assert settings.backup_plan(owner, spec, None) is None, "no store anywhere: no backups"
    server = dbinstance.instance_server(owner, spec, engine_for("postgres"), OperatorConfig(), claim_size="10Gi",
                                        backup=plan, secrets=SecretRefs("s3", "orders-backup-key"))  # fmt: skip
    env = {e["name"]: e for e in stateful_set(server)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBERDS_BACKUP_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["KUBERDS_BACKUP_CIPHER_PASS"]["valueFrom"]["secretKeyRef"] == {"name": "orders-backup-key", "key": "key"}
    assert all("value" not in e for n, e in env.items() if "PASS" in n or "SECRET" in n), "secrets by reference only"
    agent = json.loads(settings.settings_config_map(server)["data"]["agent.json"])
    assert agent["backup"]["repository"]["store"]["endpoint"] == "https://s3.local:8443"
    assert agent["synchronous"] is False and agent["scope"] == "orders"
    key = secrets.backup_key(server, "pass")
    assert "ownerReferences" not in key["metadata"], "the key outlives the server, so its snapshots stay readable"


def _tls_of(server: Server) -> tuple[list[dict], dict | None]:
    pod = stateful_set(server)["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if v["name"] == "tls"]
    agent = json.loads(settings.settings_config_map(server)["data"]["agent.json"])
    return volumes, agent["tls"]


def test_client_tls_mounts_only_the_served_pair_and_tells_the_agent() -> None:
    server = make_server()
    volumes, agent = _tls_of(server)
    assert volumes == [{"name": "tls", "secret": {"secretName": "orders-tls", "defaultMode": 0o440, "items": [
        {"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"},
        {"key": "ca.crt", "path": "ca.crt"}]}}]  # fmt: skip
    assert agent == {"directory": TLS_DIR, "require": False, "ca_file": f"{TLS_DIR}/ca.crt"}
    assert server.issues_certificate
    names = endpoint_names(server)
    assert {"orders.shop.svc", "orders-ro.shop.svc", "*.orders-pods.shop.svc"} <= set(names)
    assert "orders.shop.svc.cluster.local" in names
    other_domain = dataclasses.replace(server, config=OperatorConfig(cluster_domain="corp.internal"))
    assert "orders.shop.svc.corp.internal" in endpoint_names(other_domain)
    ca = secrets.ca_secret(server, KeyPair("CA", "CAKEY"))
    assert ca["metadata"]["name"] == "orders-ca" and ca["metadata"]["ownerReferences"]

    own = make_server(tls={"certificateSecretName": "corp-cert", "require": True})
    volumes, agent = _tls_of(own)
    assert volumes[0]["secret"]["secretName"] == "corp-cert" and agent["require"] is True
    assert not own.issues_certificate

    assert _tls_of(make_server(tls={"enabled": False})) == ([], None)


def test_the_agent_writes_only_its_own_servers_pods_configmaps_and_snapshots() -> None:
    server = make_server(multiAZ=True)
    role = next(o for o in dbinstance.server_objects(server) if o["kind"] == "Role")
    writes = [rule for rule in role["rules"] if set(rule["verbs"]) - {"get", "list", "watch", "create"}]
    named = {resource: rule.get("resourceNames") for rule in writes for resource in rule["resources"]}
    assert named["pods"] == ["orders-0", "orders-1"]
    assert sorted(named["configmaps"]) == ["orders-config", "orders-failover", "orders-leader", "orders-sync"]
    assert set(named) == {"pods", "configmaps", "events"}, "nothing else is written, the settings ConfigMap neither"
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    grant, binding = rbac.snapshot_grant(server.owner, ["nightly", "before-upgrade", "nightly"])
    assert grant["metadata"]["name"] == "orders-agent-snapshots" and grant["metadata"]["ownerReferences"]
    assert grant["rules"] == [{"apiGroups": ["kuberds.io"], "resources": ["dbsnapshots/status"],
                               "verbs": ["get", "patch"], "resourceNames": ["before-upgrade", "nightly"]}]  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "orders-agent", "namespace": "shop"}]
    empty, _ = rbac.snapshot_grant(server.owner, [])
    assert empty["rules"] == [], "an empty resourceNames would grant every snapshot"
