"""A corpus of bad objects: the API server itself (CRD schema and CEL rules) refuses each,
with an error that names the field. Creates are server-side dry runs; changes are tried
against real objects, because transition rules need the old object."""

from __future__ import annotations

import json

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster
GROUP, VERSION = "kuberds.io", "v1alpha1"
PLURALS = {"DBInstance": "dbinstances", "DBCluster": "dbclusters", "ReadReplica": "readreplicas",
           "CacheCluster": "cacheclusters", "DBSnapshot": "dbsnapshots"}  # fmt: skip
PG = {"engine": "postgres", "skipFinalSnapshot": True}


def body(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def refusal(error: ApiException) -> str:
    """Message plus every cause's field: where the API server names the field."""
    status = json.loads(error.body)
    causes = status.get("details", {}).get("causes", [])
    return status["message"] + " | " + " ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)


BAD_CREATES = [
    ("DBInstance", {"instanceClass": "db.t3.micro"}, "spec.engine", "Required value"),
    ("DBInstance", {"engine": "oracle"}, "spec.engine", "Unsupported value"),
    ("DBInstance", {**PG, "engineVersion": "16"}, "spec.engineVersion", "not offered for this engine"),
    ("DBInstance", {**PG, "instanceClass": "db.x9.huge"}, "spec.instanceClass", "Unsupported value"),
    ("DBInstance", {**PG, "storage": {"size": "lots"}}, "spec.storage.size", "should match"),
    ("DBInstance", {**PG, "storage": {"size": "500Mi"}}, "spec.storage.size", "at least 1Gi"),
    ("DBInstance", {**PG, "storage": {"size": "100Gi", "autoscaling": {"maxSize": "50Gi"}}},
     "spec.storage.autoscaling.maxSize", "must be at least storage.size"),
    ("DBInstance", {**PG, "backup": {"retentionDays": 36}}, "spec.backup.retentionDays", "less than or equal to 35"),
    ("DBInstance", {**PG, "backup": {"retentionDays": -1}}, "spec.backup.retentionDays", "greater than or equal to 0"),
    ("DBInstance", {**PG, "backup": {"window": "3:00-4:00"}}, "spec.backup.window", "should match"),
    ("DBInstance", {**PG, "backup": {"window": "03:00-03:20"}}, "spec.backup.window", "at least 30 minutes"),
    ("DBInstance", {**PG, "backup": {"window": "23:50-00:10"}}, "spec.backup.window", "at least 30 minutes"),
    ("DBInstance", {**PG, "backup": {"window": "05:15-06:00"}}, "spec.backup.window",
     "must not overlap maintenanceWindow"),
    ("DBInstance", {**PG, "maintenanceWindow": "Sun:05:00-Sun:06:00"}, "spec.maintenanceWindow",
     "should match"),
    ("DBInstance", {**PG, "maintenanceWindow": "sun:05:00-sun:05:15"}, "spec.maintenanceWindow",
     "at least 30 minutes"),
    ("DBInstance", {**PG, "maintenanceWindow": "sat:23:45-sun:03:10"}, "spec.backup.window",
     "must not overlap maintenanceWindow"),
    ("DBInstance", {**PG, "databaseName": "1orders"}, "spec.databaseName", "should match"),
    ("DBInstance", {**PG, "masterUsername": "postgres"}, "spec.masterUsername", "reserved"),
    ("DBInstance", {**PG, "parameters": {"archive_command": "/bin/true"}}, "spec.parameters",
     "a parameter kuberds manages"),
    ("DBInstance", {**PG, "port": 80}, "spec.port", "greater than or equal to 1024"),
    ("DBInstance", {**PG, "restore": {"fromSnapshot": "s1", "pointInTime": {"source": "a", "latest": True}}},
     "spec.restore", "exactly one of restore.fromSnapshot or restore.pointInTime"),
    ("DBInstance", {**PG, "restore": {"pointInTime": {"source": "a"}}}, "spec.restore.pointInTime",
     "exactly one of time or latest"),
    ("DBInstance", {**PG, "restore": {"pointInTime": {"source": "a", "time": "yesterday"}}},
     "spec.restore.pointInTime.time", "date-time"),
    ("DBInstance", {**PG, "proxy": {"enabled": True, "maxClientConnections": 10, "defaultPoolSize": 20}},
     "spec.proxy.defaultPoolSize", "cannot exceed proxy.maxClientConnections"),
    ("DBInstance", {**PG, "network": {"allowedClients": [{}]}}, "spec.network.allowedClients[0]",
     "needs namespaceSelector, podSelector or both"),
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "Bad_Bucket", "credentialsSecretName": "s3"}}},
     "spec.backup.objectStore.bucket", "should match"),
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "b1", "credentialsSecretName": "s3",
                                                     "endpoint": "ftp://store"}}},
     "spec.backup.objectStore.endpoint", "should match"),
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"operator": "Sometimes"}]}},
     "spec.scheduling.tolerations[0].operator", "Unsupported value"),
    ("DBCluster", {**PG, "zeroDataLoss": True, "instances": 2}, "spec.zeroDataLoss", "needs instances >= 3"),
    ("DBCluster", {**PG, "instances": 17}, "spec.instances", "less than or equal to 16"),
    ("DBCluster", {**PG, "readerAutoscaling": {"minReaders": 4, "maxReaders": 2}},
     "spec.readerAutoscaling.minReaders", "cannot exceed readerAutoscaling.maxReaders"),
    ("DBCluster", {**PG, "customEndpoints": [{"name": "analytics"}, {"name": "analytics"}]},
     "spec.customEndpoints[1]", "Duplicate value"),
    ("ReadReplica", {"source": {"dbInstance": "a", "dbCluster": "b"}}, "spec.source",
     "exactly one of dbInstance, dbCluster or external"),
    ("ReadReplica", {"source": {"external": {"engine": "postgres", "host": "db.example", "credentialsSecretName": "r",
                                             "sslMode": "maybe"}}},
     "spec.source.external.sslMode", "Unsupported value"),
    ("CacheCluster", {"engine": "memcached", "replicas": 2}, "spec.replicas", "Memcached has no replicas"),
    ("CacheCluster", {"engine": "memcached", "snapshots": {"retentionDays": 3}}, "spec.snapshots.retentionDays",
     "Memcached has no backups"),
    ("CacheCluster", {"engine": "redis", "numNodes": 3}, "spec.numNodes", "numNodes is for Memcached"),
    ("CacheCluster", {"engine": "redis", "automaticFailover": True}, "spec.automaticFailover",
     "needs at least one replica"),
    ("CacheCluster", {"engine": "redis", "engineVersion": "1.6"}, "spec.engineVersion", "not offered"),
    ("DBSnapshot", {"source": {}}, "spec.source", "exactly one of dbInstance or dbCluster"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "spec", "field", "message"),
    BAD_CREATES,
    ids=[f"{k}-{f}-{m[:24]}".replace(" ", "_") for k, _, f, m in BAD_CREATES],
)
def test_bad_object_is_refused_naming_the_field(api, namespace, kind, spec, field, message) -> None:
    objects = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body(kind, "bad", spec),
                                                dry_run="All")  # fmt: skip
    assert refused.value.status == 422
    text = refusal(refused.value)
    assert field in text and message in text, text


def test_unknown_fields_are_refused_with_strict_validation(api, namespace) -> None:
    objects = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "dbinstances",
                                                body("DBInstance", "bad", {**PG, "multiAz": True}),
                                                dry_run="All", field_validation="Strict")  # fmt: skip
    assert 'unknown field "spec.multiAz"' in refusal(refused.value)


BAD_CHANGES = [
    ("DBInstance", PG, {"engine": "mysql"}, "spec.engine", "engine cannot change after creation"),
    ("DBInstance", PG, {"databaseName": "other"}, "spec.databaseName", "databaseName cannot change"),
    ("DBInstance", PG, {"masterUsername": "boss"}, "spec.masterUsername", "masterUsername cannot change"),
    ("DBInstance", {**PG, "storage": {"size": "50Gi"}}, {"storage": {"size": "40Gi"}}, "spec.storage.size",
     "cannot shrink"),
    ("DBInstance", {**PG, "storage": {"size": "20Gi", "storageClassName": "standard"}},
     {"storage": {"storageClassName": "fixed"}}, "spec.storage.storageClassName", "cannot change after creation"),
    ("DBInstance", PG, {"restore": {"fromSnapshot": "nightly"}}, "spec.restore",
     "only be set when the server is created"),
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "one", "credentialsSecretName": "s3"}}},
     {"backup": {"objectStore": {"bucket": "two", "credentialsSecretName": "s3"}}}, "spec.backup.objectStore",
     "backup.objectStore cannot change once set"),
    ("DBInstance", PG, {"backup": {"encryption": {"enabled": False}}}, "spec.backup.encryption.enabled",
     "backup.encryption.enabled cannot change"),
    ("ReadReplica", {"source": {"dbInstance": "a"}, "promote": True}, {"promote": False}, "spec.promote",
     "promote cannot be undone"),
    ("ReadReplica", {"source": {"dbInstance": "a"}}, {"source": {"dbInstance": "b"}}, "spec.source",
     "source cannot change"),
    ("DBSnapshot", {"source": {"dbInstance": "a"}}, {"deletionPolicy": "Retain"}, "spec",
     "a DBSnapshot's spec cannot change"),
    ("CacheCluster", {"engine": "redis"}, {"engine": "memcached"}, "spec.engine", "engine cannot change"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "spec", "change", "field", "message"),
    BAD_CHANGES,
    ids=[f"{k}-{f}-{m[:24]}".replace(" ", "_") for k, _, _, f, m in BAD_CHANGES],
)
def test_bad_change_is_refused_naming_the_field(api, namespace, kind, spec, change, field, message) -> None:
    objects = kubernetes.client.CustomObjectsApi(api)
    plural = PLURALS[kind]
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body(kind, "base", spec))
    with pytest.raises(ApiException) as refused:
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, "base", {"spec": change},
                                               dry_run="All")  # fmt: skip
    assert refused.value.status == 422
    text = refusal(refused.value)
    assert field in text and message in text, text


def test_a_good_change_is_accepted(api, namespace) -> None:
    """The rules above refuse what they should, not everything: growing storage is fine."""
    objects = kubernetes.client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "dbinstances", body("DBInstance", "ok", PG))
    patched = objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "dbinstances", "ok",
        {"spec": {"storage": {"size": "40Gi"}, "backup": {"window": "22:00-23:00"},
                  "maintenanceWindow": "wed:01:00-wed:02:00"}},
        dry_run="All",
    )  # fmt: skip
    assert patched["spec"]["storage"]["size"] == "40Gi"
    assert patched["spec"]["backup"]["retentionDays"] == 7  # schema default
