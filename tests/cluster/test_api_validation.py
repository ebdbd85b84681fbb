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
    ("DBInstance", {**PG, "storage": {"autoscaling": {"maxSize": "50Gi", "freeSpaceThresholdPercent": 60}}},
     "spec.storage.autoscaling.freeSpaceThresholdPercent", "less than or equal to 50"),
    ("DBInstance", {**PG, "storage": {"autoscaling": {"maxSize": "50Gi", "incrementPercent": 2}}},
     "spec.storage.autoscaling.incrementPercent", "greater than or equal to 5"),
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
    ("DBInstance", {**PG, "proxy": {"enabled": True, "poolMode": "statement"}}, "spec.proxy.poolMode",
     "Unsupported value"),
    ("DBInstance", {"engine": "mariadb", "proxy": {"enabled": True}}, "spec.proxy.enabled",
     "engine mariadb has no proxy yet (offered for postgres)"),
    ("DBInstance", {**PG, "masterUsername": "kuberds_proxy"}, "spec.masterUsername", "reserved"),
    ("DBInstance", {**PG, "network": {"allowedClients": [{}]}}, "spec.network.allowedClients[0]",
     "needs namespaceSelector, podSelector or both"),
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "Bad_Bucket", "credentialsSecretName": "s3"}}},
     "spec.backup.objectStore.bucket", "should match"),
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "b1", "credentialsSecretName": "s3",
                                                     "endpoint": "ftp://store"}}},
     "spec.backup.objectStore.endpoint", "should match"),
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"operator": "Sometimes"}]}},
     "spec.scheduling.tolerations[0].operator", "Unsupported value"),
    ("DBCluster", {**PG, "readers": 16}, "spec.readers", "less than or equal to 15"),
    ("DBCluster", {**PG, "promotionTiers": [{"member": 1, "promotionTier": 16}]},
     "spec.promotionTiers[0].promotionTier", "less than or equal to 15"),
    ("DBCluster", {**PG, "customEndpoints": [{"name": "a", "staticMembers": [0], "excludedMembers": [1]}]},
     "spec.customEndpoints[0].excludedMembers", "staticMembers or excludedMembers, not both"),
    ("DBCluster", {**PG, "customEndpoints": [{"name": "a", "staticMembers": [16]}]},
     "spec.customEndpoints[0].staticMembers[0]", "less than or equal to 15"),
    ("DBCluster", {**PG, "readerAutoscaling": {"targetCPUPercent": 50, "targetConnections": 10}},
     "spec.readerAutoscaling.targetConnections", "not both"),
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
    ("CacheCluster", {"engine": "memcached", "parameters": {"maxmemory-policy": "allkeys-lru"}}, "spec.parameters",
     "only the memcached parameters users may set"),
    ("CacheCluster", {"engine": "redis", "auth": {"users": [{"name": "default", "passwordSecretName": "p"}]}},
     "spec.auth.users[0].name", "default is kept by Redis or kuberds"),
    ("CacheCluster", {"engine": "redis", "auth": {"users": [{"name": "app", "passwordSecretName": "p",
                                                             "access": "~* +@read\nFLUSHALL"}]}},
     "spec.auth.users[0].access", "should match"),
    ("CacheCluster", {"engine": "redis", "automaticFailover": True}, "spec.automaticFailover",
     "needs at least one replica"),
    ("CacheCluster", {"engine": "redis", "engineVersion": "1.6"}, "spec.engineVersion", "not offered"),
    ("DBSnapshot", {"source": {}}, "spec.source", "exactly one of dbInstance, dbCluster or cacheCluster"),
    # Messages name the offending value; malformed values get the format message alone.
    ("DBInstance", {**PG, "backup": {"window": "03:00-03:20"}}, "spec.backup.window", "03:00-03:20 is shorter"),
    ("DBInstance", {**PG, "storage": {"size": "500Mi"}}, "spec.storage.size", "storage.size 500Mi is less than 1Gi"),
    ("DBInstance", {**PG, "masterUsername": "Admin"}, "spec.masterUsername", "masterUsername Admin is reserved"),
    ("DBInstance", {**PG, "parameters": {"work_mem": "8MB", "port": "1"}}, "spec.parameters",
     "parameters must not set a parameter kuberds manages"),
    # Parameters: an allow-list of names per engine; values one line each.
    ("DBInstance", {**PG, "parameters": {"fsync": "off"}}, "spec.parameters",
     "may set only the postgres parameters users may set"),
    ("DBInstance", {**PG, "parameters": {"Archive_Command": "sh -c x"}}, "spec.parameters",
     "may set only the postgres parameters users may set"),
    ("DBInstance", {**PG, "parameters": {"search_path": "public\nSELECT 1"}}, "spec.parameters.search_path",
     "should match"),
    # Engine identifier rules, per engine.
    ("DBInstance", {**PG, "masterUsername": "pg_admin"}, "spec.masterUsername",
     "reserves user names starting with pg_"),
    ("DBInstance", {**PG, "databaseName": "template1"}, "spec.databaseName", "is kept by postgres"),
    ("DBInstance", {"engine": "mariadb", "masterUsername": "a" * 33}, "spec.masterUsername",
     "mariadb user names have at most 32 characters"),
    ("DBInstance", {"engine": "mysql", "databaseName": "mysql"}, "spec.databaseName", "is kept by mysql"),
    # Scheduling that would make an invalid pod template.
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"operator": "Exists", "value": "x"}]}},
     "spec.scheduling.tolerations[0].value", "takes no value"),
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"operator": "Equal", "value": "x"}]}},
     "spec.scheduling.tolerations[0].key", "needs a key"),
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"key": "k", "tolerationSeconds": 5}]}},
     "spec.scheduling.tolerations[0].tolerationSeconds", "only for effect NoExecute"),
    ("DBInstance", {**PG, "scheduling": {"tolerations": [{"key": "bad key", "operator": "Exists"}]}},
     "spec.scheduling.tolerations[0].key", "should match"),
    ("DBInstance", {**PG, "scheduling": {"nodeSelector": {"bad key/x/y": "v"}}}, "spec.scheduling.nodeSelector",
     "nodeSelector keys must be label keys"),
    ("DBInstance", {**PG, "scheduling": {"nodeSelector": {"disk": "not ok!"}}}, "spec.scheduling.nodeSelector.disk",
     "should match"),
    ("DBInstance", {**PG, "network": {"allowedClients": [{"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "In"}]}}]}}, "spec.network.allowedClients[0].podSelector.matchExpressions[0]",
     "operator In needs at least one value"),
    ("DBInstance", {**PG, "network": {"allowedClients": [{"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "Exists", "values": ["x"]}]}}]}},
     "spec.network.allowedClients[0].podSelector.matchExpressions[0]", "operator Exists takes no values"),
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
    assert "out of range" not in text and "conversion error" not in text, "a rule failed at run time"


BAD_NAMES = [
    ("DBInstance", "orders.eu", "metadata.name orders.eu must have at most 52 characters"),
    ("DBInstance", "1orders", "a lower-case letter first"),
    ("DBInstance", "o" * 53, "at most 52 characters"),
    ("CacheCluster", "sessions.cache", "no dots"),
    ("ReadReplica", "9replica", "a lower-case letter first"),
]  # fmt: skip
SPECS = {"DBInstance": PG, "CacheCluster": {"engine": "redis"}, "ReadReplica": {"source": {"dbInstance": "a"}}}


@pytest.mark.parametrize(("kind", "name", "message"), BAD_NAMES, ids=[f"{k}-{n[:12]}" for k, n, _ in BAD_NAMES])
def test_a_server_name_that_cannot_name_its_children_is_refused(api, namespace, kind, name, message) -> None:
    """Services are DNS-1035 labels (a letter first, no dots), and the StatefulSet's pods carry
    the revision label NAME-<hash>, at most 63 characters: a name that does not fit is refused
    here, not left to fail silently when its children are built."""
    objects = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind],
                                                body(kind, name, SPECS[kind]), dry_run="All")  # fmt: skip
    assert refused.value.status == 422 and message in refusal(refused.value), refusal(refused.value)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind],
                                            body(kind, "o" * 52, SPECS[kind]), dry_run="All")  # fmt: skip


def test_a_custom_endpoint_must_fit_in_a_service_name(api, namespace) -> None:
    objects = kubernetes.client.CustomObjectsApi(api)
    name, endpoint = "c" * 40, "analytics-readers-long-name"
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "dbclusters", body(
            "DBCluster", name, {**PG, "customEndpoints": [{"name": endpoint}]}), dry_run="All")  # fmt: skip
    assert "a custom endpoint names the Service <cluster>-<endpoint>, at most 63 characters" in refusal(refused.value)


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
    # Taking away what cannot change is a change too.
    ("DBInstance", {**PG, "backup": {"objectStore": {"bucket": "one", "credentialsSecretName": "s3"}}},
     {"backup": {"objectStore": None}}, "spec.backup.objectStore", "it cannot be removed either"),
    ("DBInstance", {**PG, "backup": {"encryption": {"keySecretName": "key"}}},
     {"backup": {"encryption": {"keySecretName": None}}}, "spec.backup.encryption.keySecretName",
     "it cannot be removed either"),
    ("DBInstance", {**PG, "engineVersion": "15"}, {"engineVersion": None}, "spec.engineVersion",
     "it cannot be removed either"),
    ("DBInstance", {**PG, "storage": {"size": "20Gi", "storageClassName": "standard"}},
     {"storage": {"storageClassName": None}}, "spec.storage.storageClassName", "cannot change after creation"),
    ("DBInstance", PG, {"storage": {"storageClassName": "fixed"}}, "spec.storage.storageClassName",
     "cannot change after creation"),
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
