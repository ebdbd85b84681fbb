"""The MariaDB engine as the operator sees it: sizing from the instance class, the agents'
rights, and what it does not offer yet, named by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.config import OperatorConfig
from kuberds.engines import engine_for, info
from kuberds.operations import restore
from kuberds.operations.server_pass import engine_feature_problem

MARIADB = engine_for("mariadb")
STORE = {"bucket": "b", "endpoint": "https://s3:443", "credentialsSecretName": "s3"}


def spec(**fields) -> DBInstanceSpec:
    return parse(DBInstanceSpec, {"engine": "mariadb", **fields})


def test_the_buffer_pool_and_connections_follow_the_instance_class_and_the_user_wins() -> None:
    small = MARIADB.parameters(DB_INSTANCE_CLASSES["db.t3.micro"], {})
    large = MARIADB.parameters(DB_INSTANCE_CLASSES["db.r6.large"], {"max_connections": "300"}, "100Gi")
    assert small["innodb_buffer_pool_size"] == str(768 * 2**20)  # 3/4 of 1 GiB, in 128 MiB chunks
    assert large["innodb_buffer_pool_size"] == str(12 * 2**30) and large["max_connections"] == "300"
    assert MARIADB.max_connections(DB_INSTANCE_CLASSES["db.r6.large"], {}) == 16 * 2**30 // 12582880


def test_the_agents_keep_their_own_lease_and_pods_only() -> None:
    rules = MARIADB.agent_rules("shop", ["shop-0", "shop-1"])
    named = {tuple(r["resources"]): r.get("resourceNames") for r in rules if "patch" in r["verbs"]}
    assert named == {("leases",): ["shop-leader"], ("pods",): ["shop-0", "shop-1"], ("events",): None}
    assert not any("secrets" in r["resources"] or "configmaps" in r["resources"] for r in rules)


def test_what_is_not_offered_yet_is_named_by_its_field() -> None:
    backed = spec(backup={"objectStore": STORE})
    assert engine_feature_problem(MARIADB, backed, "DBInstance") == ""
    assert engine_feature_problem(MARIADB, spec(restore={"fromSnapshot": "s"}), "DBInstance") == ""
    assert "DBCluster" in engine_feature_problem(MARIADB, spec(), "DBCluster")
    assert engine_for("mysql") is None and "engine: mariadb" in info("mysql").not_offered
    # The contract's answer for an engine without backups (the day one comes without them).
    bare = replace(MARIADB, backups=False)
    assert engine_feature_problem(bare, backed, "DBInstance").startswith("backup.objectStore:")
    assert engine_feature_problem(bare, spec(restore={"fromSnapshot": "s"}), "DBInstance").startswith("restore:")


def test_a_point_in_time_restore_from_a_server_of_another_engine_is_refused_by_name() -> None:
    wanted = spec(restore={"pointInTime": {"source": "pg", "latest": True}})
    source = {"metadata": {"name": "pg"}, "spec": {"engine": "postgres"}, "status": {}}
    resolved = restore.resolve(wanted, restore.RestoreSeen(source=source), OperatorConfig(), datetime.now(UTC))
    assert resolved.problem.reason == "RestoreSourceOfAnotherEngine"
    assert resolved.problem.message == "pg (restore.pointInTime.source) runs postgres, which mariadb cannot load"
