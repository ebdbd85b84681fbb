"""The MariaDB engine as the operator sees it: sizing from the instance class, the agents'
rights, and what it does not offer yet, named by field."""

from __future__ import annotations

from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.engines import engine_for, info
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
    assert engine_feature_problem(MARIADB, spec(), "DBInstance") == ""
    assert "DBCluster" in engine_feature_problem(MARIADB, spec(), "DBCluster")
    assert engine_feature_problem(MARIADB, spec(backup={"objectStore": STORE}), "DBInstance").startswith(
        "backup.objectStore:")  # fmt: skip
    assert engine_for("mysql") is None and "engine: mariadb" in info("mysql").not_offered
    assert engine_feature_problem(engine_for("postgres"), spec(backup={"objectStore": STORE}), "DBCluster") == ""
