"""CacheCluster against the real API server and operator (kwok nodes: no agent runs, so no
member is labelled primary): a Memcached cluster's objects, status and Auto Discovery
membership as the nodes come and go; a Redis cluster's objects, endpoints and password; bad
parameters and a missing Secret answered with conditions that say why."""

from __future__ import annotations

import kubernetes
import pytest

from kuberds.contract.memcached import Membership
from tests.support.dbinstances import GROUP, VERSION
from tests.support.kube import wait_for

pytestmark = pytest.mark.cluster


class Caches:
    def __init__(self, api: kubernetes.client.ApiClient, namespace: str):
        self.objects = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.namespace = namespace

    def create(self, name: str, **spec) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CacheCluster", "metadata": {"name": name},
                "spec": {"engine": "memcached", **spec}}  # fmt: skip
        return self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "cacheclusters", body)

    def patch(self, name: str, spec: dict) -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "cacheclusters", name,
                                                    {"spec": spec})  # fmt: skip

    def status(self, name: str) -> dict:
        obj = self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "cacheclusters", name)
        return obj.get("status") or {}

    def condition(self, name: str, type_: str) -> dict:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def membership(self, name: str) -> Membership | None:
        try:
            found = self.core.read_namespaced_config_map(f"{name}-discovery", self.namespace)
        except kubernetes.client.ApiException:
            return None
        return Membership.from_data(found.data)

    def events(self, name: str, reason: str) -> list:
        selector = f"involvedObject.name={name},reason={reason}"
        return self.core.list_namespaced_event(self.namespace, field_selector=selector).items


@pytest.fixture
def caches(api, namespace: str, operator) -> Caches:
    return Caches(api, namespace)


def test_a_memcached_cluster_runs_its_nodes_and_publishes_them_for_discovery(caches: Caches) -> None:
    caches.create("sessions", numNodes=3, parameters={"threads": "2"})
    status = wait_for(lambda: (s := caches.status("sessions")).get("phase") == "Available" and s, timeout=90,
                      what="CacheCluster sessions Available")  # fmt: skip
    assert status["endpoint"] == f"sessions.{caches.namespace}.svc:11211"
    assert [m["name"] for m in status["members"]] == ["sessions-0", "sessions-1", "sessions-2"]
    assert len({m.get("zone") for m in status["members"]}) == 3, "the nodes spread over the three zones"
    sts = caches.apps.read_namespaced_stateful_set("sessions", caches.namespace)
    assert sts.spec.replicas == 3 and not sts.spec.volume_claim_templates
    endpoint = caches.core.read_namespaced_service("sessions", caches.namespace)
    assert endpoint.spec.ports[0].target_port == "discovery"

    pods = {p.metadata.name: p.status.pod_ip for p in caches.core.list_namespaced_pod(caches.namespace).items}
    membership = wait_for(lambda: (m := caches.membership("sessions")) and len(m.nodes) == 3 and m,
                          what="three nodes in the discovery ConfigMap")  # fmt: skip
    assert [(n.host.split(".")[0], n.ip) for n in membership.nodes] == sorted(pods.items())
    assert membership.nodes[0].host == f"sessions-0.sessions-pods.{caches.namespace}.svc.cluster.local"

    # A hand edit of the configuration endpoint is undone at once, not at the next full pass.
    caches.core.patch_namespaced_service("sessions", caches.namespace, {"spec": {"ports": [
        {"name": "discovery", "port": 11211, "targetPort": 9999, "protocol": "TCP"}]}})  # fmt: skip
    wait_for(lambda: caches.core.read_namespaced_service("sessions", caches.namespace).spec.ports[0].target_port
             == "discovery", timeout=15, what="the edited configuration endpoint put back")  # fmt: skip
    caches.core.delete_namespaced_service("sessions", caches.namespace)
    named = "metadata.name=sessions"
    wait_for(lambda: caches.core.list_namespaced_service(caches.namespace, field_selector=named).items, timeout=15,
             what="the deleted endpoint back")  # fmt: skip

    caches.patch("sessions", {"numNodes": 2})
    smaller = wait_for(lambda: (m := caches.membership("sessions")) and len(m.nodes) == 2 and m,
                       what="the scaled-away node to leave discovery")  # fmt: skip
    assert smaller.version > membership.version
    assert wait_for(lambda: caches.events("sessions", "MembershipChanged"), what="a MembershipChanged Event")
    wait_for(lambda: caches.status("sessions").get("phase") == "Available" and len(
        caches.status("sessions")["members"]) == 2, what="two members")  # fmt: skip


def test_a_parameter_value_memcached_would_refuse_is_named(caches: Caches) -> None:
    caches.create("tuned", parameters={"threads": "0"})
    condition = wait_for(lambda: (c := caches.condition("tuned", "Reconciled")).get("reason") == "InvalidParameter"
                         and c, what="InvalidParameter")  # fmt: skip
    assert "parameters.threads: 0 is below the minimum" in condition["message"]
    assert not caches.apps.list_namespaced_stateful_set(caches.namespace).items
    caches.patch("tuned", {"parameters": {"threads": "2"}})
    wait_for(lambda: caches.status("tuned").get("phase") == "Available", timeout=90, what="tuned Available")


def test_a_redis_cluster_gets_its_members_endpoints_and_a_generated_password(caches: Caches) -> None:
    caches.create("queue", engine="redis", replicas=2, automaticFailover=True, parameters={"timeout": "300"})
    status = wait_for(lambda: (s := caches.status("queue")).get("phase") == "Available" and s, timeout=90,
                      what="CacheCluster queue Available")  # fmt: skip
    assert (status["endpoint"], status["readerEndpoint"]) == (f"queue.{caches.namespace}.svc:6379",
                                                              f"queue-ro.{caches.namespace}.svc:6379")  # fmt: skip
    assert status["authSecretName"] == "queue-auth" and len(status["members"]) == 3
    secret = caches.core.read_namespaced_secret("queue-auth", caches.namespace)
    assert len(secret.data["password"]) > 20 and secret.metadata.owner_references[0].kind == "CacheCluster"
    primary = caches.core.read_namespaced_service("queue", caches.namespace)
    assert primary.spec.selector["kuberds.io/role"] == "primary"
    assert caches.membership("queue") is None, "Redis publishes no Auto Discovery membership"
    role = kubernetes.client.RbacAuthorizationV1Api(caches.core.api_client).read_namespaced_role(
        "queue-agent", caches.namespace)  # fmt: skip
    assert any(r.resource_names == ["queue-leader"] for r in role.rules)
    served = caches.core.read_namespaced_secret("queue-tls", caches.namespace)
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(served.data), "TLS by default, with a certificate kuberds issued"
    tls = caches.condition("queue", "TLS")
    assert (tls["status"], status["tlsPort"]) == ("True", 6380) and "TLS on port 6380 beside plain TCP" in tls[
        "message"
    ]
    assert caches.events("queue", "CertificateIssued")


def test_a_user_certificate_without_its_ca_is_named(caches: Caches) -> None:
    secret = {"metadata": {"name": "corp-cert"}, "type": "Opaque", "stringData": {"tls.crt": "x", "tls.key": "y"}}
    caches.core.create_namespaced_secret(caches.namespace, secret)
    caches.create("own", engine="redis", tls={"certificateSecretName": "corp-cert", "require": True})
    condition = wait_for(lambda: (c := caches.condition("own", "Reconciled")).get("reason") == "SecretInvalid"
                         and c, what="the missing ca.crt named")  # fmt: skip
    assert condition["message"] == "Secret corp-cert (tls.certificateSecretName) has no key ca.crt"


def test_a_missing_auth_secret_is_a_condition_naming_it(caches: Caches) -> None:
    caches.create("locked", engine="redis", auth={"secretName": "no-such-password"})
    condition = wait_for(lambda: (c := caches.condition("locked", "Reconciled")).get("reason") == "SecretNotFound"
                         and c, what="SecretNotFound")  # fmt: skip
    assert "no-such-password (auth.secretName)" in condition["message"]
    assert not caches.apps.list_namespaced_stateful_set(caches.namespace).items


def test_acl_rules_outside_the_allow_list_and_missing_user_secrets_are_named(caches: Caches) -> None:
    users = [{"name": "app", "access": "~* +@all >sneaky", "passwordSecretName": "app-password"}]
    caches.create("guarded", engine="redis", auth={"users": users})
    condition = wait_for(lambda: (c := caches.condition("guarded", "Reconciled")).get("reason") == "InvalidAccessRule"
                         and c, what="InvalidAccessRule")  # fmt: skip
    assert "auth.users[0].access: '>sneaky' is not a key, channel or command rule" in condition["message"]
    caches.patch("guarded", {"auth": {"users": [{**users[0], "access": "~* +@all"}]}})
    condition = wait_for(lambda: (c := caches.condition("guarded", "Reconciled")).get("reason") == "SecretNotFound"
                         and c, what="SecretNotFound")  # fmt: skip
    assert "app-password (auth.users[0].passwordSecretName)" in condition["message"]
    assert not caches.apps.list_namespaced_stateful_set(caches.namespace).items


STORE = {"bucket": "caches", "endpoint": "https://s3.storage:8333", "credentialsSecretName": "s3-keys"}


def test_snapshots_need_their_store_keys_and_a_dbsnapshot_records_where_its_rdb_goes(caches: Caches) -> None:
    caches.create("kept", engine="redis", replicas=1, automaticFailover=True,
                  snapshots={"retentionDays": 3, "objectStore": STORE})  # fmt: skip
    condition = wait_for(lambda: (c := caches.condition("kept", "Reconciled")).get("reason") == "SecretNotFound"
                         and c, what="SecretNotFound for the store keys")  # fmt: skip
    assert "s3-keys (snapshots.objectStore.credentialsSecretName)" in condition["message"]
    caches.core.create_namespaced_secret(caches.namespace, {"metadata": {"name": "s3-keys"}, "stringData": {
        "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}})  # fmt: skip
    snapshots = wait_for(lambda: (c := caches.condition("kept", "Snapshots")).get("reason") == "Scheduled" and c,
                         timeout=90, what="Snapshots Scheduled")  # fmt: skip
    assert "kept 3 days" in snapshots["message"]
    key = caches.core.read_namespaced_secret("kept-backup-key", caches.namespace)
    assert len(key.data["key"]) > 30 and not key.metadata.owner_references, "the passphrase outlives the cluster"

    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBSnapshot", "metadata": {"name": "before-upgrade"},
            "spec": {"source": {"cacheCluster": "kept"}}}  # fmt: skip
    caches.objects.create_namespaced_custom_object(GROUP, VERSION, caches.namespace, "dbsnapshots", body)
    status = wait_for(lambda: (s := caches.objects.get_namespaced_custom_object(
        GROUP, VERSION, caches.namespace, "dbsnapshots", "before-upgrade").get("status") or {}).get("repository")
        and s, what="the snapshot's recorded repository")  # fmt: skip
    assert status["phase"] == "Pending" and status["repository"]["keySecretName"] == "kept-backup-key"
    assert status["repository"]["store"]["bucket"] == "caches" and "/kept/" in status["repository"]["path"]
    grant = kubernetes.client.RbacAuthorizationV1Api(caches.core.api_client).read_namespaced_role(
        "kept-agent-snapshots", caches.namespace)  # fmt: skip
    assert grant.rules[0].resource_names == ["before-upgrade"], "the agents may write this snapshot's status only"


def test_a_restore_names_the_snapshot_it_waits_for_or_refuses(caches: Caches) -> None:
    caches.create("copy", engine="redis", restore={"fromSnapshot": "no-such-snapshot"})
    condition = wait_for(lambda: (c := caches.condition("copy", "Reconciled")).get("reason") == "SnapshotNotFound"
                         and c, what="SnapshotNotFound")  # fmt: skip
    assert "DBSnapshot no-such-snapshot (restore.fromSnapshot) does not exist" in condition["message"]
    assert not caches.apps.list_namespaced_stateful_set(caches.namespace).items
    with pytest.raises(kubernetes.client.ApiException) as refused:
        caches.create("sessions", restore={"fromSnapshot": "nightly"})
    assert "Memcached has no snapshots to restore from" in refused.value.body
