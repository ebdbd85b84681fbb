"""ReadReplicas on the real control plane (pods on kwok): what a replica is made of, what it
copies from its source, the limit per source, promotion as the agent is told it, a source
that goes, and bad input."""

from __future__ import annotations

import base64

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.dbinstances import GROUP, STORE, VERSION, DBInstances, agent_json, owned_by, store_credentials
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster
PLURAL = "readreplicas"


def create_replica(dbi: DBInstances, name: str, source: dict | None = None, **spec) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReadReplica", "metadata": {"name": name},
            "spec": {"source": source if source is not None else {"dbInstance": "src"}, **spec}}  # fmt: skip
    return dbi.objects.create_namespaced_custom_object(GROUP, VERSION, dbi.namespace, PLURAL, body)


def replica(dbi: DBInstances, name: str) -> dict:
    return dbi.get(name, plural=PLURAL) or {}


def condition(dbi: DBInstances, name: str, type_: str) -> dict:
    return next((c for c in (replica(dbi, name).get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def wait_condition(dbi: DBInstances, name: str, type_: str, status: str, reason: str | None = None,
                   timeout: float = 60) -> dict:  # fmt: skip
    def matches() -> dict | None:
        c = condition(dbi, name, type_)
        return c if c.get("status") == status and (reason is None or c.get("reason") == reason) else None

    return wait_for(matches, timeout=timeout, what=f"ReadReplica {name} {type_}={status} {reason or ''}\n"
                                                   f"{replica(dbi, name).get('status')}")  # fmt: skip


def wait_available(dbi: DBInstances, name: str, timeout: float = 120) -> dict:
    try:
        return wait_for(lambda: (r := replica(dbi, name)) and (r.get("status") or {}).get("phase") == "Available"
                        and r, timeout=timeout, what=f"ReadReplica {name} Available")  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\n{replica(dbi, name).get('status')}") from None


def secret_data(dbi: DBInstances, name: str) -> dict[str, str]:
    data = dbi.core.read_namespaced_secret(name, dbi.namespace).data or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_replica_follows_its_source_with_its_credentials(dbi: DBInstances, api) -> None:
    store_credentials(dbi)
    dbi.create("src", backup={"objectStore": STORE}, databaseName="shop", masterUsername="owner")
    dbi.wait_phase("src", "Available")
    created = create_replica(dbi, "src-rr", instanceClass="db.t3.small", backup={"objectStore": STORE})
    obj = wait_available(dbi, "src-rr")
    ns, status = dbi.namespace, obj["status"]
    assert status["source"]["name"] == "src" and status["source"]["engine"] == "postgres"
    assert status["source"]["databaseName"] == "shop" and status["source"]["masterUsername"] == "owner"
    assert status["endpoint"] == f"src-rr.{ns}.svc:5432"
    # Phase and conditions come from different passes (the members' refresh, the full one).
    wait_condition(dbi, "src-rr", "SourceUnavailable", "False")

    # Its users are the source's: the copies hold the source's passwords, made once, owned by it.
    source_master, master = secret_data(dbi, "src-master"), secret_data(dbi, "src-rr-master")
    assert master == {"username": "owner", "password": source_master["password"]}
    source_credentials = secret_data(dbi, "src-agent-credentials")
    credentials = secret_data(dbi, "src-rr-agent-credentials")
    for key in ("superuser-password", "replication-password", "rewind-password", "proxy-password"):
        assert credentials[key] == source_credentials[key], key
    assert credentials["api-password"] != source_credentials["api-password"], "its own HA API password"
    uid = created["metadata"]["uid"]
    for name in ("src-rr-master", "src-rr-agent-credentials"):
        assert owned_by(dbi.core.read_namespaced_secret(name, ns), uid), name

    # The agent follows the source's writer endpoint, verifying its certificate by name.
    config = agent_json(dbi, "src-rr")
    standby = config["standby"]
    assert (standby["host"], standby["port"], standby["ssl_mode"]) == (f"src.{ns}.svc", 5432, "verify-full")
    assert standby["ca_bundle"] == secret_data(dbi, "src-tls")["ca.crt"]
    assert standby["seed_from_backup"] is False, "the source has no restorable time yet: a base backup seeds it"
    assert config["backup"]["repository"]["path"].endswith(f"/src-rr/{uid}"), "its own repository, once promoted"
    assert config["instances"] == 1 and config["master_username"] == "owner"
    sts = dbi.apps.read_namespaced_stateful_set("src-rr", ns)
    assert sts.spec.template.metadata.labels["kuberds.io/replication-source"] == "src"
    assert sts.spec.template.spec.containers[0].resources.requests["memory"] == "2Gi"  # db.t3.small, its own
    # The source admits its replicas' pods on its port, whatever its allowed clients.
    policy = kubernetes.client.NetworkingV1Api(api).read_namespaced_network_policy("src", ns)
    peers = [(p.pod_selector.match_labels if p.pod_selector else None) for rule in policy.spec.ingress
             for p in rule._from]  # fmt: skip
    assert {"app.kubernetes.io/managed-by": "kuberds", "kuberds.io/replication-source": "src"} in peers

    # Promotion: agent.json stops naming a source (the leader is told at once where one runs).
    dbi.objects.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "src-rr", {"spec": {"promote": True}})
    wait_for(lambda: agent_json(dbi, "src-rr")["standby"] is None, timeout=30, what="agent.json without a source")
    wait_condition(dbi, "src-rr", "Replicating", "False", "Promoting")
    with pytest.raises(ApiException) as refused:
        dbi.objects.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "src-rr", {"spec": {"promote": False}})
    assert "promote cannot be undone" in refused.value.body


def test_seeded_from_the_sources_backup_when_it_has_one(dbi: DBInstances) -> None:
    store_credentials(dbi)
    dbi.create("src", backup={"objectStore": STORE}, tls={"enabled": False})
    dbi.wait_condition("src", "Reconciled", "True")
    dbi.objects.patch_namespaced_custom_object_status(GROUP, VERSION, dbi.namespace, "dbinstances", "src", {
        "status": {"latestRestorableTime": "2026-12-04T10:00:00Z"}})  # fmt: skip
    create_replica(dbi, "seeded")
    wait_condition(dbi, "seeded", "Reconciled", "True")
    config = agent_json(dbi, "seeded")
    assert config["standby"]["seed_from_backup"] is True
    assert config["standby"]["ssl_mode"] == "prefer", "the source serves no TLS"
    assert config["restore"]["repository"]["path"] == agent_json(dbi, "src")["backup"]["repository"]["path"]
    env = {e.name: e for e in dbi.apps.read_namespaced_stateful_set("seeded", dbi.namespace)
           .spec.template.spec.containers[0].env}  # fmt: skip
    assert env["KUBERDS_RESTORE_CIPHER_PASS"].value_from.secret_key_ref.name == "src-backup-key"
    assert condition(dbi, "seeded", "Restored") == {}, "a replica is seeded, not restored"


def test_a_source_that_goes_leaves_the_replica_serving(dbi: DBInstances) -> None:
    dbi.create("src")
    dbi.wait_phase("src", "Available")
    create_replica(dbi, "orphan")
    wait_available(dbi, "orphan")
    dbi.release("src")
    dbi.delete("src")
    wait_for(lambda: dbi.get("src") is None, timeout=60, what="the source gone")
    wait_condition(dbi, "orphan", "SourceUnavailable", "True", "SourceDeleted", timeout=90)
    assert (replica(dbi, "orphan").get("status") or {}).get("phase") == "Available", "it keeps serving reads"
    assert secret_data(dbi, "orphan-agent-credentials")["superuser-password"], "its copies outlive the source's"
    assert agent_json(dbi, "orphan")["standby"]["ca_bundle"], "how to reach the source is kept as it was"


def test_the_sixteenth_replica_of_a_source_is_refused(dbi: DBInstances) -> None:
    dbi.create("src")
    for i in range(15):  # paused: counted, without objects of their own
        create_replica(dbi, f"r{i:02d}", automationPaused=True)
    create_replica(dbi, "r15")
    refused = wait_condition(dbi, "r15", "Reconciled", "False", "TooManyReplicas")
    assert "15 read replicas" in refused["message"]
    made = dbi.apps.list_namespaced_stateful_set(dbi.namespace, label_selector="app.kubernetes.io/instance=r15")
    assert not made.items, "nothing is made for a replica over the limit"
    dbi.objects.delete_namespaced_custom_object(GROUP, VERSION, dbi.namespace, PLURAL, "r00")
    wait_condition(dbi, "r15", "Reconciled", "True", timeout=90)


def test_bad_sources_are_refused_or_said(dbi: DBInstances) -> None:
    for source, field in (({}, "exactly one of"), ({"dbInstance": "a", "dbCluster": "b"}, "exactly one of")):
        with pytest.raises(ApiException) as refused:
            create_replica(dbi, "bad", source)
        assert refused.value.status == 422 and field in refused.value.body
    with pytest.raises(ApiException) as refused:
        create_replica(dbi, "bad", skipFinalSnapshot=False)
    assert "skipFinalSnapshot" in refused.value.body
    with pytest.raises(ApiException) as refused:
        create_replica(dbi, "bad", parameters={"work_mem": "4MB\nevil"})
    assert refused.value.status == 422
    create_replica(dbi, "missing", {"dbInstance": "nothere"})
    assert "nothere" in wait_condition(dbi, "missing", "Reconciled", "False", "SourceNotFound")["message"]
    create_replica(dbi, "clustered", {"dbCluster": "aurora"})
    wait_condition(dbi, "clustered", "Reconciled", "False", "SourceKindNotSupported")
    dbi.core.create_namespaced_secret(dbi.namespace, {"metadata": {"name": "ext"}, "stringData": {
        "username": "replicator", "password": "x"}})  # fmt: skip
    create_replica(dbi, "external", {"external": {"engine": "postgres", "host": "db.example.com",
                                                  "credentialsSecretName": "ext"}})  # fmt: skip
    assert "external" in wait_condition(dbi, "external", "Reconciled", "False", "SourceKindNotSupported")["message"]
    dbi.create("maria", engine="mariadb")
    create_replica(dbi, "maria-rr", {"dbInstance": "maria"})
    wait_condition(dbi, "maria-rr", "Reconciled", "False", "EngineNotSupported")
    create_replica(dbi, "bad-param", parameters={"no_such_parameter": "1"})
    dbi.create("src")
    assert "no_such_parameter" in wait_condition(dbi, "bad-param", "Reconciled", "False", "InvalidParameter")["message"]
