"""The MariaDB agent with its backups wired (real mariadbd, real agents and Lease, a real S3
server): the primary ships its binlogs and takes its first full backup on its own, reports its
restorable window on its pod, takes a DBSnapshot asked of it through the API, and new servers
restored to a chosen second, and from the snapshot, hold exactly the rows committed before."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest
import yaml
from tests.support.dataplane import BUCKET
from tests.support.kube import Cluster, wait_for
from tests.support.mariadb import LocalMariaDB
from tests.support.redis import StoreAccess
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS

from kuberds import API_GROUP, API_VERSION
from kuberds.builders.meta import Owner
from kuberds.builders.rbac import snapshot_grant
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository, RestorePlan


def test_the_primary_backs_itself_up_and_a_new_server_restores_to_a_second(
    cluster: Cluster, namespace: str, workroot: Path, s3: SeaweedFS
) -> None:
    ca = (s3.workdir / "tls.crt").read_text()
    access = StoreAccess(ACCESS_KEY, SECRET_KEY, "the passphrase of this test", ca)
    repository = Repository(ObjectStoreTarget(BUCKET, endpoint=s3.endpoint, ca_bundle=ca), f"/pitr/{namespace}",
                            "books", encrypted=True)  # fmt: skip
    plan = BackupPlan(repository, retention_days=1)
    source = LocalMariaDB(cluster, namespace, "books", Path(tempfile.mkdtemp(prefix="m", dir=workroot)), 1,
                          synchronous=False, backup=plan, store=access)  # fmt: skip
    with source:
        primary = source.primary()
        source.query(primary, "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL)",
                     database=source.database)  # fmt: skip
        wait_for(lambda: source.report(primary).last_backup_time, timeout=120,
                 what=f"the first full backup in the agent's report\n{source.logs()}")  # fmt: skip
        for i in range(1, 51):
            source.query(primary, "INSERT INTO orders VALUES (%s, 'before')", (i,), database=source.database)
        time.sleep(1.5)
        target = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.5)
        for i in range(51, 101):
            source.query(primary, "INSERT INTO orders VALUES (%s, 'after')", (i,), database=source.database)

        def reaches_past_target() -> bool:
            latest = source.report(primary).latest_restorable_time
            return bool(latest) and datetime.fromisoformat(latest.replace("Z", "+00:00")) > target

        wait_for(reaches_past_target, timeout=240, interval=3, what=f"binlogs shipped past the target\n"
                 f"{source.logs()}")  # fmt: skip
        snapshot = take_snapshot(source, "books-manual")
        assert snapshot["backupID"].endswith("-manual") and snapshot["engine"] == "mariadb", snapshot
        source.query(primary, "INSERT INTO orders VALUES (101, 'after the snapshot')", database=source.database)
    restore = RestorePlan(repository, target_time=target.strftime("%Y-%m-%dT%H:%M:%SZ"))
    copy = LocalMariaDB(cluster, namespace, "copy", Path(tempfile.mkdtemp(prefix="m", dir=workroot)), 1,
                        synchronous=False, restore=restore, store=access)  # fmt: skip
    with copy:
        member = copy.primary()
        rows = copy.query(member, "SELECT id, note FROM orders ORDER BY id", database=copy.database)
        assert [r[0] for r in rows] == list(range(1, 51)) and {r[1] for r in rows} == {"before"}, copy.logs()
        # The restored server's accounts are kuberds' again, and its master user is this one.
        assert copy.query(member, "SELECT 1", database=copy.database) == [(1,)]
    # Multi-AZ: the standby starts from the new server's own first full backup (the primary's
    # binlogs start where it restored), then acknowledges its commits.
    from_snapshot = RestorePlan(repository, snapshot_set=snapshot["backupID"])
    own = BackupPlan(replace(repository, path=f"/pitr/{namespace}-snapped", stanza="snapped"), retention_days=1)
    snapped = LocalMariaDB(cluster, namespace, "snapped", Path(tempfile.mkdtemp(prefix="m", dir=workroot)), 2,
                           synchronous=True, restore=from_snapshot, backup=own, store=access)  # fmt: skip
    with snapped:
        member = snapped.primary(timeout=180)
        rows = snapped.query(member, "SELECT COUNT(*), MAX(id) FROM orders", database=snapped.database)
        assert rows == [(100, 100)], snapped.logs()
        snapped.wait_replicas(timeout=180)
        snapped.query(member, "INSERT INTO orders VALUES (102, 'on the copy')", database=snapped.database)
        standby = next(m for m in snapped.members if m is not member)
        on_standby = wait_for(lambda: snapped.query(standby, "SELECT COUNT(*), MAX(id) FROM orders",
                                                    database=snapped.database) == [(101, 102)],
                              timeout=30, what=f"the copy's commit on its standby\n{snapped.logs()}")  # fmt: skip
        assert on_standby


def take_snapshot(source: LocalMariaDB, name: str) -> dict:
    """What a user and the operator do: a DBSnapshot of the server, and the grant that lets its
    agent write that snapshot's status; the agent takes it and says Available."""
    namespace = source.namespace
    grant = snapshot_grant(Owner("DBInstance", source.name, namespace, "uid-of-" + source.name), [name])
    snapshot = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "DBSnapshot",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"source": {"dbInstance": source.name}},
    }
    for obj in grant:
        obj["metadata"]["namespace"] = namespace
        obj["metadata"].pop("ownerReferences", None)
    source.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all([*grant, snapshot]))
    objects = kubernetes.client.CustomObjectsApi(source.cluster.client())

    def available() -> dict | None:
        status = objects.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "dbsnapshots", name)
        return status.get("status") if (status.get("status") or {}).get("phase") == "Available" else None

    return wait_for(available, timeout=180, interval=2, what=f"DBSnapshot {name} Available\n{source.logs()}")


pytestmark = pytest.mark.dataplane
