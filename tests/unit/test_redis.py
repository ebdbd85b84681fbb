"""Redis: the agents' HA decision (observation in, readable action out), redis.conf, metrics."""

from __future__ import annotations

import pytest

from kuberds.agent.lease import Lease
from kuberds.agent.redis.agent import Address, peer_addresses
from kuberds.agent.redis.config import redis_conf
from kuberds.agent.redis.decide import MASTER, REPLICA, Member, Seen, decide
from kuberds.agent.redis.metrics import replica_lag_bytes
from kuberds.api.classes import CACHE_NODE_TYPES
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import CacheClusterSpec
from kuberds.builders import cache as build
from kuberds.builders import cache_status
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.redis import AclUser, RedisAgentConfig, acl_setuser
from kuberds.engines import cache_engine_for
from tests.unit.test_builders import assert_golden, by_kind

FREE = Lease(None, False)
NEVER = Lease(None, False, exists=False)


def held(by: str) -> Lease:
    return Lease(by, True)


def lapsed(by: str) -> Lease:
    return Lease(by, False)


def member(ordinal: int, role: str | None = REPLICA, offset: int = 100) -> Member:
    return Member(f"c-{ordinal}", ordinal, role, offset, has_data=offset > 0)


def seen(me: Member, lease: Lease | None, *peers: Member, following: str | None = None, **kw) -> Seen:
    return Seen(me, following, lease, peers, **{"took_lease": True, **kw})


def test_the_holder_renews_and_a_holder_that_is_a_replica_promotes() -> None:
    assert decide(seen(member(0, MASTER), held("c-0"), member(1))).reason == "primary: renewed the lease"
    assert decide(seen(member(0, REPLICA), held("c-0"), member(1))).reason == "holding the lease: promoted self"


def test_members_follow_the_holder_and_a_stray_master_demotes() -> None:
    action = decide(seen(member(1), held("c-0"), member(0, MASTER)))
    assert (action.kind, action.target, action.reason) == ("follow", "c-0", "following the primary c-0")
    assert decide(seen(member(1), held("c-0"), following="c-0")).reason == "replica: following c-0"
    demote = decide(seen(member(2, MASTER), held("c-1"), member(1, MASTER)))
    assert (demote.kind, demote.target) == ("demote", "c-1")
    assert "demoted self" in demote.reason


def test_the_replica_with_the_most_data_takes_a_lapsed_lease() -> None:
    peers = (member(0, None), member(2, REPLICA, offset=900))
    assert decide(seen(member(1, REPLICA, offset=950), lapsed("c-0"), *peers)).kind == "promote"
    behind = decide(seen(member(1, REPLICA, offset=800), lapsed("c-0"), *peers))
    assert behind.kind == "wait" and "c-2 has the most data (offset 900)" in behind.reason
    # A tie goes to the lower ordinal: exactly one candidate.
    tie = (member(0, None), member(2, REPLICA, offset=950))
    assert decide(seen(member(1, REPLICA, offset=950), FREE, *tie)).kind == "promote"
    assert decide(seen(member(2, REPLICA, offset=950), FREE, member(0, None), member(1, REPLICA, 950))).kind == "wait"


def test_a_member_that_restarted_empty_never_becomes_primary() -> None:
    empty = member(0, MASTER, offset=0)  # Redis starts as an empty master after a restart
    with_data = member(1, REPLICA, offset=500)
    assert decide(seen(empty, lapsed("c-0"), with_data)).kind == "wait"
    assert decide(seen(with_data, lapsed("c-0"), empty)).kind == "promote"
    # Even alone among those answering (the replica with data is frozen): it waits.
    alone = decide(seen(empty, lapsed("c-0"), member(1, None)))
    assert alone.kind == "wait" and "restarted empty" in alone.reason


def test_a_lease_in_this_members_name_from_before_a_restart_is_let_go_at_once() -> None:
    restarted = decide(seen(member(0, MASTER, offset=0), held("c-0"), member(1), took_lease=False))
    assert restarted.kind == "release" and "before it restarted empty" in restarted.reason


def test_a_deleted_lease_is_only_free_while_members_have_data() -> None:
    # Deleted by hand: member 0, restarted empty, must not bootstrap over the replica's data.
    assert decide(seen(member(0, MASTER, 0), NEVER, member(1, REPLICA, 500))).kind == "wait"
    assert decide(seen(member(1, REPLICA, 500), NEVER, member(0, MASTER, 0))).kind == "promote"


def test_bootstrap_and_starting_over_when_every_member_is_empty() -> None:
    assert decide(seen(member(0, MASTER, 0), NEVER, member(1, MASTER, 0))).reason.startswith(
        "no primary ever: member 0"
    )
    assert decide(seen(member(1, MASTER, 0), NEVER, member(0, MASTER, 0))).kind == "wait"
    over = decide(seen(member(0, MASTER, 0), lapsed("c-1"), member(1, MASTER, 0), member(2, MASTER, 0)))
    assert over.kind == "promote" and "starting over" in over.reason
    assert decide(seen(member(1, MASTER, 0), lapsed("c-1"), member(0, MASTER, 0))).kind == "wait"


def test_a_holder_whose_redis_stops_answering_lets_the_lease_go() -> None:
    assert decide(seen(member(0, None), held("c-0"), redis_failures=1)).kind == "wait"
    assert decide(seen(member(0, None), held("c-0"), redis_failures=2)).kind == "release"


def test_a_primary_cut_off_from_the_api_server_pauses_writes_before_the_lease_can_move() -> None:
    assert decide(seen(member(0, MASTER), None, renewed_ago=2.0)).kind == "wait"
    fence = decide(seen(member(0, MASTER), None, renewed_ago=4.2))
    assert fence.kind == "fence" and "writes paused" in fence.reason
    assert decide(seen(member(1), None, renewed_ago=9.0)).kind == "wait"


CONFIG = RedisAgentConfig("c", "shop", 6379, 3, 400, {"maxmemory-policy": "allkeys-lru"})


def test_redis_conf_authenticates_everyone_and_keeps_the_server_to_the_agents() -> None:
    text = redis_conf(CONFIG, password='p"w', admin_password="adm", listen="0.0.0.0", port=6379,
                      announce_ip="10.0.0.5", data_dir="/d")  # fmt: skip
    lines = dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("user "))
    users = [line for line in text.splitlines() if line.startswith("user ")]
    assert users == ['user default on ">p\\"w" ~* &* +@all -@admin', 'user kuberds-admin on ">adm" ~* &* +@all']
    assert (lines["masteruser"], lines["masterauth"]) == ("kuberds", '"adm"')  # never the application's password
    assert "requirepass" not in lines
    assert (lines["min-replicas-to-write"], lines["min-replicas-max-lag"]) == ("1", "4")
    assert lines["save"] == '""' and lines["appendonly"] == "no" and lines["maxmemory"] == "400mb"
    assert lines["maxmemory-policy"] == '"allkeys-lru"'  # the user's, after the defaults
    assert lines["enable-debug-command"] == "no"


def test_a_value_with_a_newline_cannot_add_a_directive() -> None:
    bad = RedisAgentConfig("c", "shop", 6379, 3, 400, {"maxmemory-policy": "x\nrename-command CONFIG ''"})
    with pytest.raises(ValueError, match="control characters"):
        redis_conf(bad, password="p", admin_password="a", listen="0.0.0.0", port=6379, announce_ip="1.2.3.4",
                   data_dir="/d")  # fmt: skip


def test_peers_are_the_members_dns_names_unless_given() -> None:
    peers = peer_addresses(CONFIG, {})
    assert peers["c-2"] == Address("c-2.c-pods.shop.svc.cluster.local", 6379)
    given = peer_addresses(CONFIG, {"KUBERDS_REDIS_PEERS": "c-0=127.0.0.1:7000,c-1=127.0.0.1:7001"})
    assert given == {"c-0": Address("127.0.0.1", 7000), "c-1": Address("127.0.0.1", 7001)}


def test_replica_lag_is_the_slowest_replicas_distance() -> None:
    info = {"master_repl_offset": 1000, "slave0": {"offset": 990}, "slave1": {"offset": 700}}
    assert replica_lag_bytes(info) == 300
    assert replica_lag_bytes({"master_repl_offset": 5}) is None


# ---------------------------------------------------------------- builders


def make_redis(**spec) -> build.Cache:
    parsed = parse(CacheClusterSpec, {"engine": "redis", "replicas": 2, "automaticFailover": True, **spec})
    owner = Owner("CacheCluster", "queue", "shop", "0b7c5e0e-0000-4000-8000-00000000000d")
    return build.Cache(owner, parsed, cache_engine_for("redis"), OperatorConfig())


def test_redis_objects_match_the_golden_file() -> None:
    assert_golden("cachecluster-redis.yaml", build.cache_objects(make_redis(multiAZ=True)))


def test_the_endpoints_select_the_role_the_agents_label() -> None:
    objects = by_kind(build.cache_objects(make_redis()))
    services = {s["metadata"]["name"]: s["spec"] for s in objects["Service"]}
    assert services["queue"]["selector"]["kuberds.io/role"] == "primary"
    assert services["queue-ro"]["selector"]["kuberds.io/role"] == "replica"
    assert "kuberds.io/role" not in services["queue-pods"]["selector"]
    assert "ConfigMap" in objects and all(c["metadata"]["name"] != "queue-discovery" for c in objects["ConfigMap"])
    assert build.endpoint_fields(make_redis()) == {
        "endpoint": "queue.shop.svc:6379", "readerEndpoint": "queue-ro.shop.svc:6379", "tlsPort": 6380}  # fmt: skip


def test_members_get_the_auth_password_and_the_lease_rights_only() -> None:
    objects = by_kind(build.cache_objects(make_redis()))
    sts = objects["StatefulSet"][0]
    assert sts["spec"]["replicas"] == 3
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBERDS_CACHE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "queue-auth", "key": "password"}
    rules = objects["Role"][0]["rules"]
    assert {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"],
            "resourceNames": ["queue-leader"]} in rules  # fmt: skip
    pods = next(r for r in rules if r["resources"] == ["pods"])
    assert pods["resourceNames"] == ["queue-0", "queue-1", "queue-2"]
    assert {"apiGroups": ["kuberds.io"], "resources": ["dbsnapshots"], "verbs": ["get", "list", "watch"]} in rules
    assert not any("secrets" in r["resources"] and not r.get("resourceNames") for r in rules)
    own = make_redis(auth={"secretName": "corp-redis"})
    assert own.auth_secret == "corp-redis" and not own.generates_auth
    assert make_redis(auth={"enabled": False}).auth_secret is None


def test_multi_az_requires_the_spread_over_zones() -> None:
    def spread(cache: build.Cache) -> str:
        return build.stateful_set(cache)["spec"]["template"]["spec"]["topologySpreadConstraints"][0][
            "whenUnsatisfiable"]  # fmt: skip

    assert (spread(make_redis(multiAZ=True)), spread(make_redis())) == ("DoNotSchedule", "ScheduleAnyway")


def test_redis_parameters_come_from_the_allow_list() -> None:
    engine = cache_engine_for("redis")
    assert engine.parameter_problems({"maxmemory-policy": "allkeys-lru", "timeout": "300"}) == []
    assert "parameters.save: not a redis parameter" in engine.parameter_problems({"save": "60 1"})[0]
    assert "is not one of" in engine.parameter_problems({"maxmemory-policy": "everything"})[0]


STORE = {"bucket": "caches", "endpoint": "https://s3.storage:8333", "credentialsSecretName": "s3-keys"}


def test_snapshots_say_where_they_go_or_why_there_are_none() -> None:
    no_store = cache_status.snapshots_condition(make_redis(snapshots={"retentionDays": 3}))
    assert (no_store.status, no_store.reason) == ("False", "NoObjectStore") and "no snapshot can be taken" in (
        no_store.message)  # fmt: skip
    assert cache_status.snapshots_condition(make_redis()).reason == "Disabled"
    daily = cache_status.snapshots_condition(make_redis(snapshots={"retentionDays": 3, "objectStore": STORE}))
    assert (daily.status, daily.reason) == ("True", "Scheduled")
    assert "kept 3 days" in daily.message and "s3://caches/kuberds/shop/queue/0b7c5e0e" in daily.message


def test_a_store_gives_the_agents_a_snapshot_plan_keys_and_a_passphrase_not_owned_by_the_cluster() -> None:
    cache = make_redis(snapshots={"retentionDays": 2, "window": "01:00-02:00", "objectStore": STORE})
    objects = by_kind(build.cache_objects(cache))
    config = RedisAgentConfig.from_json(objects["ConfigMap"][0]["data"]["agent.json"])
    assert config.snapshots.retention_days == 2 and config.snapshots.window == "01:00-02:00"
    assert config.snapshots.repository.path == "/kuberds/shop/queue/0b7c5e0e-0000-4000-8000-00000000000d"
    assert config.snapshots.repository.encrypted and config.restore is None
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in
           objects["StatefulSet"][0]["spec"]["template"]["spec"]["containers"][0]["env"]
           if "secretKeyRef" in e.get("valueFrom", {})}  # fmt: skip
    assert env["KUBERDS_BACKUP_ACCESS_KEY_ID"] == {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
    assert env["KUBERDS_BACKUP_CIPHER_PASS"] == {"name": "queue-backup-key", "key": "key"}
    assert cache.generates_snapshot_key
    key = build.snapshot_key(cache, "secret")
    assert "ownerReferences" not in key["metadata"], "the passphrase outlives the cluster, as its snapshots do"
    plain = make_redis(snapshots={"objectStore": STORE, "encryption": {"enabled": False}})
    assert plain.snapshot_key_secret is None and not plain.generates_snapshot_key
    assert make_redis().snapshot_plan is None


def test_memcached_has_no_snapshots_even_with_a_default_store() -> None:
    owner = Owner("CacheCluster", "sessions", "shop", "0b7c5e0e-0000-4000-8000-00000000000e")
    spec = parse(CacheClusterSpec, {"engine": "memcached"})
    cache = build.Cache(owner, spec, cache_engine_for("memcached"), OperatorConfig(default_object_store=STORE))
    assert cache.snapshot_plan is None and not cache.generates_snapshot_key
    assert cache_status.snapshots_condition(cache).reason == "Disabled"


def test_restored_is_said_once_the_first_primary_serves_and_then_kept() -> None:
    cache = make_redis(restore={"fromSnapshot": "nightly"})
    [waiting] = cache_status.restored_condition(cache, None, [])
    assert (waiting.status, waiting.reason) == ("False", "Restoring")
    [done] = cache_status.restored_condition(cache, "queue-0", [])
    assert (done.status, done.reason) == ("True", "SnapshotLoaded")
    [kept] = cache_status.restored_condition(cache, None, [{"type": "Restored", "status": "True"}])
    assert kept.status == "True"
    assert cache_status.restored_condition(make_redis(), "queue-0", []) == []


@pytest.mark.parametrize(("access", "problem"), [
    ("~app:* +@read", None),
    ("%R~cache:* &events:* +get +client|setname -@all allkeys", None),
    ("~* +@everything", "'+@everything' names no ACL category"),
    (">hunter2 +@all", "'>hunter2' is not a key, channel or command rule"),
    ("on ~*", "'on' is not a key, channel or command rule"),
    ("(~x +get)", "is not a key, channel or command rule"),
    ("nopass", "'nopass' is not a key, channel or command rule"),
])  # fmt: skip
def test_acl_rules_are_an_allow_list_naming_the_user(access: str, problem: str | None) -> None:
    spec = make_redis(auth={"users": [{"name": "app", "access": access, "passwordSecretName": "p"}]}).spec
    found = cache_engine_for("redis").spec_problems(spec)
    assert (found == []) if problem is None else (problem in found[0] and found[0].startswith("auth.users[0].access"))


def test_acl_setuser_starts_from_nothing_and_refuses_dangerous_commands_unless_allowed() -> None:
    user = AclUser("app", "~app:* +@read", "app-password")
    assert acl_setuser(user, "s3cret") == ["app", "reset", "on", ">s3cret", "~app:*", "+@read", "-@dangerous",
                                           "-@admin"]  # fmt: skip
    assert acl_setuser(AclUser("ops", "~* +@all", "p", allow_dangerous=True), "x")[-2:] == ["+@all", "-@admin"]


def test_the_agents_may_read_the_users_password_secrets_by_name_only() -> None:
    cache = make_redis(auth={"users": [{"name": "app", "passwordSecretName": "app-password"}]})
    role = by_kind(build.cache_objects(cache))["Role"][0]
    assert role["rules"][0] == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                                "resourceNames": ["app-password"]}  # fmt: skip
    assert all(r["resources"] != ["secrets"] for r in by_kind(build.cache_objects(make_redis()))["Role"][0]["rules"])


def test_redis_parameters_are_written_as_redis_conf_reads_them() -> None:
    spec = make_redis(parameters={"activedefrag": "on", "timeout": "3e2", "maxmemory-policy": "AllKeys-LRU"}).spec
    config = RedisAgentConfig.from_json(cache_engine_for("redis").agent_config("q", "s", 6379, CACHE_NODE_TYPES[
        "cache.t3.micro"], spec))  # fmt: skip
    assert config.parameters == {"activedefrag": "yes", "timeout": "300", "maxmemory-policy": "allkeys-lru"}


def test_tls_is_served_beside_plain_tcp_or_alone_with_require_and_replication_uses_it() -> None:
    beside = make_redis()
    objects = by_kind(build.cache_objects(beside))
    primary = next(s for s in objects["Service"] if s["metadata"]["name"] == "queue")
    assert [(p["name"], p["port"]) for p in primary["spec"]["ports"]] == [("redis", 6379), ("tls", 6380)]
    pod = objects["StatefulSet"][0]["spec"]["template"]["spec"]
    assert {"name": "tls", "mountPath": "/etc/kuberds-tls", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]["secretName"] == "queue-tls"
    policy = objects["NetworkPolicy"][0]["spec"]["ingress"]
    assert {"protocol": "TCP", "port": 6380} in policy[0]["ports"], "replication between members goes over TLS"
    config = RedisAgentConfig.from_json(objects["ConfigMap"][0]["data"]["agent.json"])
    conf = redis_conf(config, password="p", admin_password="a", listen="0.0.0.0", port=6379, announce_ip="10.0.0.1",
                      data_dir="/var/lib/redis")  # fmt: skip
    assert "port 6379\n" in conf and "tls-port 6380\n" in conf and "tls-replication yes\n" in conf
    assert 'tls-ca-cert-file "/etc/kuberds-tls/ca.crt"' in conf and "tls-auth-clients no\n" in conf
    assert "*.queue-pods.shop.svc.cluster.local" in build.dns_names(beside)

    only = make_redis(tls={"require": True})
    config = RedisAgentConfig.from_json(build.settings_config_map(only)["data"]["agent.json"])
    conf = redis_conf(config, password="p", admin_password="a", listen="0.0.0.0", port=6379, announce_ip="10.0.0.1",
                      data_dir="/var/lib/redis")  # fmt: skip
    assert "port 0\n" in conf and "tls-port 6379\n" in conf, "TLS only, on the port clients know"
    services = by_kind(build.cache_objects(only))["Service"]
    assert all(len(s["spec"]["ports"]) == 1 for s in services) and only.tls_port == 6379
    assert cache_status.tls_condition(only).message.startswith("only TLS on port 6379, replication too")
    off = make_redis(tls={"enabled": False})
    assert off.tls_port is None and "tls-port" not in redis_conf(
        RedisAgentConfig.from_json(build.settings_config_map(off)["data"]["agent.json"]), password="p",
        admin_password="a", listen="0.0.0.0", port=6379, announce_ip="10.0.0.1", data_dir="/d")  # fmt: skip
    own = make_redis(tls={"certificateSecretName": "corp-redis-cert"})
    assert own.tls_secret == "corp-redis-cert" and not own.issues_certificate


def test_without_automatic_failover_no_replica_takes_a_lapsed_lease_and_an_empty_primary_returns() -> None:
    lapsed = Lease("queue-0", fresh=False)
    replica = Member("queue-1", 1, REPLICA, 500, True)
    waiting = decide(Seen(replica, "queue-0", lapsed, (Member("queue-0", 0),), automatic_failover=False))
    assert (waiting.kind, waiting.reason) == ("wait", "queue-0's lease lapsed and automatic failover is off: "
                                                      "waiting for it")  # fmt: skip
    assert decide(Seen(replica, "queue-0", lapsed, (Member("queue-0", 0),))).kind == "promote", "on by default"
    back_empty = Seen(Member("queue-0", 0, MASTER, 0, False), None, Lease("queue-0", fresh=True), (replica,),
                      took_lease=False, automatic_failover=False)  # fmt: skip
    starting = Seen(Member("queue-0", 0), None, Lease("queue-0", fresh=True), (replica,), automatic_failover=False)
    assert decide(starting).kind == "wait", "not let go while its Redis starts"
    again = decide(back_empty)
    assert again.kind == "promote" and again.reason.startswith("restarted empty and automatic failover is off")
    silent = Seen(Member("queue-0", 0), None, Lease("queue-0", fresh=True), (replica,), redis_failures=5,
                  took_lease=True, automatic_failover=False)  # fmt: skip
    assert decide(silent).kind == "wait", "the holder keeps the lease while its Redis is down"
    handed_over = Seen(replica, "queue-0", Lease(None, fresh=False), (Member("queue-0", 0),),
                       automatic_failover=False)  # fmt: skip
    assert decide(handed_over).kind == "promote", "a lease let go on a clean stop is still handed over"
    config = RedisAgentConfig.from_json(build.settings_config_map(make_redis(automaticFailover=False, replicas=0))
                                        ["data"]["agent.json"])  # fmt: skip
    assert config.automatic_failover is False
