"""Redis members as real processes (redis-server under `kuberds agent redis`), deciding who is
primary over a real Lease: bootstrap, a primary killed or frozen under writes (acknowledged
writes lost counted, WAIT-acknowledged ones never), a member that restarts empty never
becoming primary, and the old primary rejoining as a replica."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.support.kube import Cluster, wait_for
from tests.support.redis import LocalRedis, Writer

from kuberds.contract.redis import MIN_REPLICAS_MAX_LAG


@pytest.fixture
def local_redis(
    cluster: Cluster, namespace: str, workroot: Path, request: pytest.FixtureRequest
) -> Iterator[LocalRedis]:
    given = getattr(request, "param", {})
    replicas = given.get("replicas", 2)
    local = LocalRedis(cluster, namespace, "queue", Path(tempfile.mkdtemp(prefix="r", dir=workroot)), replicas,
                       given.get("users"), tls=given.get("tls"),
                       automatic_failover=given.get("automatic_failover", True))  # fmt: skip
    with local:
        try:
            local.primary(timeout=60)
            local.wait_replicas(replicas)
            yield local
        except BaseException:
            print(local.logs())
            raise


def missing(local: LocalRedis, keys: list[str]) -> list[str]:
    client = local.client(local.primary())
    values = client.mget(keys) if keys else []
    return [k for k, v in zip(keys, values, strict=True) if v is None]


def test_member_0_bootstraps_and_the_others_replicate(local_redis: LocalRedis) -> None:
    primary = local_redis.primary()
    assert primary.name == "queue-0" and local_redis.lease_holder() == "queue-0"
    local_redis.client(primary).set("greeting", "hello")
    for member in local_redis.members[1:]:
        replica = local_redis.client(member)
        wait_for(lambda r=replica: r.get("greeting") == "hello", timeout=10, what=f"{member.name} has the key")
        with pytest.raises(redis.ReadOnlyError):
            replica.set("x", "1")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=primary.port, password="wrong").ping()
    # The application's user may not touch what the agents' HA rests on.
    app = local_redis.client(primary)
    for command in (("REPLICAOF", "NO", "ONE"), ("ACL", "SETUSER", "kuberds", "on", ">x", "+psync"),
                    ("CONFIG", "SET", "min-replicas-to-write", "0"), ("SHUTDOWN", "NOSAVE")):  # fmt: skip
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)


def test_a_killed_primary_is_replaced_and_acknowledged_writes_survive(local_redis: LocalRedis) -> None:
    old = local_redis.primary()
    with Writer(local_redis) as writer:
        time.sleep(2)
        local_redis.kill(old)
        killed = time.monotonic()  # after: a write in flight may still be acknowledged while it dies
        wait_for(lambda: writer.first_write_after(killed + 0.001) is not None, timeout=30,
                 what="a write acknowledged after the kill")  # fmt: skip
        time.sleep(1)
    new = local_redis.primary()
    first = writer.first_write_after(killed)
    before = [a for a in writer.acknowledged if a.at < killed]
    lost = missing(local_redis, [a.key for a in before])
    waited = [a.key for a in before if a.replicated]
    recent = [a.key for a in before if a.at > killed - MIN_REPLICAS_MAX_LAG]
    print(
        f"\n  kill -9 of the primary: first acknowledged write {first:.2f} s later on {new.name}; "
        f"{len(lost)} of {len(before)} acknowledged writes lost; {len(waited)} WAIT-acknowledged, none may be"
    )
    assert new.name != old.name
    assert not set(lost) & set(waited), "a write every replica had acknowledged (WAIT) was lost"
    assert set(lost) <= set(recent), "lost writes older than the stated bound (min-replicas-max-lag)"

    local_redis.start(old)  # the pod comes back, empty
    wait_for(lambda: local_redis.replication(old).get("master_link_status") == "up", timeout=30,
             what="the old primary streaming from the new one")  # fmt: skip
    assert local_redis.labelled_primary().name == new.name
    assert local_redis.client(old).get(before[0].key) is not None, "it synced the new primary's data"


@pytest.mark.parametrize("local_redis", [{"replicas": 1, "tls": {"require": True}}], indirect=True)
def test_tls_only_members_replicate_and_fail_over_over_tls(local_redis: LocalRedis) -> None:
    primary = local_redis.primary()
    replica = next(m for m in local_redis.members if m is not primary)
    assert local_redis.replication(replica)["master_link_status"] == "up", "replication over TLS (the only port)"
    with pytest.raises(redis.RedisError):
        local_redis.client(primary, tls=False).ping()
    writes = local_redis.client(primary, timeout=5)
    writes.set("over-tls", "1")
    assert writes.execute_command("WAIT", "1", "5000") == 1
    local_redis.kill(primary)
    new = wait_for(lambda: (p := local_redis.labelled_primary()) and p.name != primary.name and p, timeout=30,
                   what="the replica promoted, its agent speaking TLS to it")  # fmt: skip
    assert local_redis.client(new, timeout=5).get("over-tls") == "1"


@pytest.mark.parametrize("local_redis", [{"replicas": 1, "automatic_failover": False}], indirect=True)
def test_without_automatic_failover_the_replica_waits_and_the_primary_returns_empty(local_redis: LocalRedis) -> None:
    primary = local_redis.primary()
    replica = next(m for m in local_redis.members if m is not primary)
    writes = local_redis.client(primary, timeout=5)
    writes.set("before", "1")
    assert writes.execute_command("WAIT", "1", "5000") == 1
    local_redis.kill(primary)
    time.sleep(10)  # twice the lease: a replica with automatic failover would have taken it by now
    assert local_redis.lease_holder() == primary.name and local_redis.labelled_primary() in (None, primary)
    assert local_redis.replication(replica).get("role") == "slave", "the replica did not promote itself"
    local_redis.start(primary)  # the pod comes back, empty
    wait_for(lambda: local_redis.replication(replica).get("master_link_status") == "up"
             and local_redis.replication(primary).get("role") == "master", timeout=30,
             what="the returned primary serving and the replica resynced from it")  # fmt: skip
    assert local_redis.labelled_primary() == primary
    assert local_redis.client(replica).get("before") is None, (
        "the data went with the primary, as it does without failover"
    )


def test_a_frozen_primary_is_replaced_and_stops_taking_writes_when_it_thaws(local_redis: LocalRedis) -> None:
    old = local_redis.primary()
    with Writer(local_redis) as writer:
        time.sleep(2)
        local_redis.signal(old, signal.SIGSTOP)
        time.sleep(0.3)  # a reply already on its way when the signal lands is not a write after the freeze
        frozen = time.monotonic()
        try:
            wait_for(lambda: writer.first_write_after(frozen + 0.001) is not None, timeout=30,
                     what="a write acknowledged after the freeze")  # fmt: skip
        finally:
            local_redis.signal(old, signal.SIGCONT)
        time.sleep(1)
    first = writer.first_write_after(frozen)
    new = local_redis.primary()
    before = [a for a in writer.acknowledged if a.at < frozen]
    lost = missing(local_redis, [a.key for a in before])
    print(
        f"\n  SIGSTOP of the primary: first acknowledged write {first:.2f} s later on {new.name}; "
        f"{len(lost)} of {len(before)} acknowledged writes lost"
    )
    assert new.name != old.name and not lost
    # Thawed, the old primary follows the new one and refuses writes.
    wait_for(lambda: local_redis.replication(old).get("role") == "slave", timeout=20,
             what="the thawed primary demoted")  # fmt: skip
    with pytest.raises(redis.ReadOnlyError):
        local_redis.client(old).set("stale", "1")


@pytest.mark.parametrize("local_redis", [{"replicas": 1}], indirect=True)
def test_a_member_that_restarts_empty_never_becomes_primary(local_redis: LocalRedis) -> None:
    primary, replica = local_redis.primary(), local_redis.members[1]
    local_redis.client(primary).set("precious", "1")
    wait_for(lambda: local_redis.client(replica).get("precious") == "1", timeout=10, what="replicated")
    local_redis.signal(replica, signal.SIGSTOP)  # the one member with data cannot answer
    local_redis.kill(primary)
    local_redis.start(primary)  # back at once, empty, finding the lease in its own name
    try:
        wait_for(lambda: not local_redis.lease_holder(), timeout=15, what="the lease of its earlier run let go")
        end = time.monotonic() + 8
        while time.monotonic() < end:  # it answers, has nothing, and waits for a member with data
            assert not local_redis.lease_holder(), "the empty member took the lease"
            assert local_redis.labelled_primary() is None, "the empty member is labelled primary"
            time.sleep(0.5)
    finally:
        local_redis.signal(replica, signal.SIGCONT)
    assert local_redis.primary(timeout=30).name == replica.name
    wait_for(lambda: local_redis.client(primary).get("precious") == "1", timeout=30,
             what="the restarted member synced the data back")  # fmt: skip


USERS = {"app": ("~app:* +@read +@write", "app-secret-1"), "ops": ("~* +@all", "ops-secret-1")}


@pytest.mark.parametrize("local_redis", [{"replicas": 1, "users": USERS}], indirect=True)
def test_acl_users_of_the_spec_work_and_are_refused_what_they_may_not_do(local_redis: LocalRedis) -> None:
    primary, replica = local_redis.primary(), local_redis.members[1]

    def as_user(member, user: str, password: str | None = None) -> redis.Redis:
        return local_redis.client(member, user=user, password=password or USERS[user][1])

    app = wait_for(lambda: _answers(as_user(primary, "app")), timeout=20, what="the app user applied")
    app.set("app:1", "one")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("billing:1", "x")  # outside its keys
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.flushall()  # a write command, but @dangerous
    ops = as_user(primary, "ops")
    ops.set("billing:1", "ok")
    with pytest.raises(redis.exceptions.NoPermissionError):
        ops.execute_command("CONFIG", "GET", "maxmemory")  # +@all still leaves @dangerous refused
    # ACLs are not replicated: the replica's agent applied them too.
    reader = wait_for(lambda: _answers(as_user(replica, "app")), timeout=20, what="the app user on the replica")
    wait_for(lambda: reader.get("app:1") == "one", timeout=10, what="the replica serving the app user")

    local_redis.set_password("app", "app-secret-2")  # rotation: the Secret changes, the members follow
    wait_for(lambda: _answers(as_user(primary, "app", "app-secret-2")), timeout=20, what="the new password")
    with pytest.raises(redis.AuthenticationError):
        as_user(primary, "app", "app-secret-1").get("app:1")


def _answers(client: redis.Redis) -> redis.Redis | None:
    """The client once it logs in and may read app:* (the app user may not even PING)."""
    try:
        client.get("app:probe")
        return client
    except (redis.AuthenticationError, redis.ConnectionError):
        return None
