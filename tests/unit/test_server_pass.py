"""The build step of a server pass, tested as data: what it read in, what it would write out."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.builders import certificates
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.engines import engine_for
from kuberds.handlers.dbinstance import BUILDERS
from kuberds.operations.restore import RestoreSeen
from kuberds.operations.server_pass import Seen, build, secrets_to_read

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
STORE = {"bucket": "backups", "endpoint": "https://s3.example:9000", "credentialsSecretName": "s3"}


def body(**spec) -> dict:
    return {"apiVersion": "kuberds.io/v1alpha1", "kind": "DBInstance", "spec": {"engine": "postgres", **spec},
            "metadata": {"name": "orders", "namespace": "shop", "uid": "u-1", "generation": 3}}  # fmt: skip


def seen(obj: dict, **kw) -> Seen:
    return Seen(obj, parse(DBInstanceSpec, obj["spec"]), NOW, **kw)


def secret(owner: str | None = None, **data: str) -> dict:
    """A Secret's data; with `owner`, controlled by the server of that uid."""
    meta = {"ownerReferences": [{"uid": owner, "controller": True}]} if owner else {}
    return {"metadata": meta, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


CREDENTIAL_KEYS = (
    "superuser-password",
    "replication-password",
    "api-password",
    "rewind-password",
    "proxy-password",
    "proxy-console-password",
)


def tokens(counter: list[int]):
    def token(length: int) -> str:
        counter.append(length)
        return f"token-{len(counter)}"

    return token


def test_a_new_server_gets_its_credentials_a_ca_a_certificate_and_its_objects() -> None:
    made: list[int] = []
    keys = secret(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk")
    plan = build(seen(body(backup={"objectStore": STORE}), secrets={"s3": keys}), OperatorConfig(), BUILDERS,
                 tokens(made))  # fmt: skip
    assert plan.problem is None
    created = {o["metadata"]["name"]: o for o in plan.create}
    assert sorted(created) == ["orders-agent-credentials", "orders-backup-key", "orders-ca", "orders-master"]
    assert created["orders-master"]["stringData"]["password"].startswith("token-")
    assert set(created["orders-agent-credentials"]["stringData"]) == set(CREDENTIAL_KEYS)
    assert "ownerReferences" not in created["orders-backup-key"]["metadata"]
    applied = [(o["kind"], o["metadata"]["name"]) for o in plan.apply]
    assert applied[0] == ("Secret", "orders-tls"), "the certificate is issued before the pods that mount it"
    assert ("StatefulSet", "orders") in applied and ("ConfigMap", "orders-settings") in applied
    assert plan.events[0][0] == "CertificateIssued"
    assert [c.type for c in plan.conditions] == ["Reconciled", "Paused"]
    assert plan.storage is None and not plan.claim_patches


def test_a_server_that_has_everything_writes_only_its_objects() -> None:
    ca = certificates.new_ca("test", NOW)
    obj = body()
    first = build(seen(obj), OperatorConfig(), BUILDERS, tokens([]))
    served = next(o for o in first.apply if o["metadata"]["name"] == "orders-tls")["data"]
    reads = {
        "orders-master": secret("u-1", password="p"),
        "orders-agent-credentials": secret("u-1", **{k: "a" for k in CREDENTIAL_KEYS}),
        "orders-ca": secret("u-1", **{"ca.crt": ca.certificate, "ca.key": ca.key}),
    }
    # The served certificate from a first pass was signed by another CA: reissued from this one.
    ours = {"ownerReferences": [{"uid": "u-1", "controller": True}]}
    again = build(seen(obj, secrets={**reads, "orders-tls": {"metadata": ours, "data": served}}), OperatorConfig(),
                  BUILDERS)  # fmt: skip
    assert again.create == [] and "not issued by the server's CA" in again.events[0][1]
    tls = next(o for o in again.apply if o["metadata"]["name"] == "orders-tls")
    settled = build(seen(obj, secrets={**reads, "orders-tls": {"metadata": ours, "data": tls["data"]}}),
                    OperatorConfig(), BUILDERS)  # fmt: skip
    assert settled.create == [] and settled.events == [] and settled.secret_patches == []
    assert [o["metadata"]["name"] for o in settled.apply if o["kind"] == "Secret"] == []


def test_a_missing_secret_reference_is_a_condition_and_nothing_is_written() -> None:
    plan = build(seen(body(masterUserSecretName="byo")), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "SecretNotFound" and "masterUserSecretName" in plan.problem.message
    assert plan.create == plan.apply == []
    wrong = build(seen(body(masterUserSecretName="byo"), secrets={"byo": secret(user="x")}), OperatorConfig(),
                  BUILDERS)  # fmt: skip
    assert wrong.problem.reason == "SecretInvalid" and "password" in wrong.problem.message


def test_an_engine_without_a_data_plane_is_told_so() -> None:
    plan = build(seen(body(engine="mysql")), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "EngineNotSupported" and plan.apply == []
    assert "no Oracle MySQL server" in plan.problem.message and "engine: mariadb" in plan.problem.message


def test_a_restore_from_a_snapshot_that_is_not_there_waits_with_a_condition() -> None:
    plan = build(seen(body(restore={"fromSnapshot": "gone"}), source=RestoreSeen()), OperatorConfig(), BUILDERS)
    assert (plan.problem.reason, plan.retry_in) == ("SnapshotNotFound", 15)


def test_volumes_grow_only_where_the_storage_class_can_expand() -> None:
    template = {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    sts = {"metadata": {"name": "orders", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                        "labels": {"app.kubernetes.io/instance": "orders"}},
           "spec": {"replicas": 2, "volumeClaimTemplates": [template]}, "status": {"replicas": 2}}  # fmt: skip

    def claim(name: str, size: str, storage_class: str) -> dict:
        return {"metadata": {"name": name},
                "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": storage_class}}  # fmt: skip

    obj = body(storage={"size": "30Gi"})
    grows = seen(obj, stateful_set=sts, claims=[claim("data-orders-0", "20Gi", "fast")],
                 storage_classes={"fast": {"allowVolumeExpansion": True}})  # fmt: skip
    plan = build(grows, OperatorConfig(), BUILDERS)
    assert plan.claim_patches == [("data-orders-0", {"spec": {"resources": {"requests": {"storage": "30Gi"}}}})]
    assert plan.storage is None, "the claims' own events say Resizing, then Resized"
    assert plan.storage_fields == {"lastGrowTime": grows.now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    # A member made later gets 30Gi too: the StatefulSet is made again, as it is but for its
    # claim templates (nothing of the old object's identity or status).
    assert plan.recreate_stateful_set == {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "orders", "namespace": "shop", "labels": {"app.kubernetes.io/instance": "orders"}},
        "spec": {"replicas": 2, "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "30Gi"}}}}]},
    }  # fmt: skip
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    fixed = seen(obj, stateful_set=sts, claims=[claim("data-orders-0", "20Gi", "fixed")],
                 storage_classes={"fixed": {}})  # fmt: skip
    plan = build(fixed, OperatorConfig(), BUILDERS)
    assert plan.claim_patches == [] and plan.storage.reason == "ExpansionNotSupported"
    assert plan.recreate_stateful_set is None and plan.storage_fields is None
    sts_spec = next(o for o in plan.apply if o["kind"] == "StatefulSet")["spec"]
    assert sts_spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_the_pass_reads_the_secrets_it_may_need_and_no_others() -> None:
    spec = parse(DBInstanceSpec, {"engine": "postgres", "tls": {"certificateSecretName": "corp"},
                                  "backup": {"objectStore": {**STORE, "caSecretName": "store-ca"},
                                             "encryption": {"keySecretName": "key"}}})  # fmt: skip
    assert secrets_to_read("orders", spec, OperatorConfig()) == [
        "corp", "s3", "store-ca", "key", "orders-master", "orders-agent-credentials"]  # fmt: skip


def test_a_name_held_by_another_object_is_a_conflict_not_a_takeover() -> None:
    someone = {"metadata": {"name": "orders-ro", "namespace": "shop", "labels": {"team": "web"}}}
    other = {"metadata": {"name": "orders-ro", "namespace": "shop", "ownerReferences": [
        {"kind": "DBInstance", "name": "orders-ro", "uid": "u-2", "controller": True}]}}  # fmt: skip
    for holder, words in (
        (someone, "kuberds did not make it for this server"),
        (other, "belongs to DBInstance orders-ro"),
    ):
        plan = build(seen(body(), holders={("Service", "shop", "orders-ro"): holder}), OperatorConfig(), BUILDERS)
        assert plan.problem.reason == "NameConflict" and "Service orders-ro already exists" in plan.problem.message
        assert words in plan.problem.message and plan.apply == plan.create == []
    ours = {"metadata": {"name": "orders-ro", "ownerReferences": [{"uid": "u-1", "controller": True}]}}
    assert (
        build(seen(body(), holders={("Service", "shop", "orders-ro"): ours}), OperatorConfig(), BUILDERS).problem
        is None
    )
    # An unowned Secret of the generated name (the master password) is not taken for ours either.
    planted = build(seen(body(), secrets={"orders-master": secret(password="x")}), OperatorConfig(), BUILDERS)
    assert planted.problem.reason == "NameConflict" and "Secret orders-master" in planted.problem.message


def test_every_secret_reference_is_checked_naming_the_field() -> None:
    plan = build(seen(body(backup={"objectStore": STORE})), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "SecretNotFound" and "Secret s3 (backup.objectStore.credentialsSecretName)" in \
        plan.problem.message  # fmt: skip
    default = OperatorConfig(default_object_store={**STORE, "credentialsSecretName": "team-s3"})
    plan = build(seen(body()), default, BUILDERS)
    assert "team-s3 (the operator's default object store.credentialsSecretName)" in plan.problem.message
    keys = secret(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk")
    plan = build(seen(body(backup={"objectStore": STORE, "encryption": {"keySecretName": "k"}}),
                      secrets={"s3": keys, "k": secret(other="x")}), OperatorConfig(), BUILDERS)  # fmt: skip
    assert plan.problem.reason == "SecretInvalid" and "backup.encryption.keySecretName" in plan.problem.message


def test_a_point_in_time_outside_the_sources_window_is_a_condition_at_once() -> None:
    keys = secret(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk")
    source = {
        **body(backup={"objectStore": STORE}),
        "status": {"earliestRestorableTime": "2026-12-01T00:00:00Z", "latestRestorableTime": "2026-12-04T11:00:00Z"},
    }
    source["metadata"] = {**source["metadata"], "name": "src", "uid": "u-src"}
    read = RestoreSeen(source=source, secrets={"s3": keys, "src-backup-key": secret(key="p")})

    def restored(time: str):
        obj = body(restore={"pointInTime": {"source": "src", "time": time}})
        return build(seen(obj, source=read), OperatorConfig(), BUILDERS).problem

    assert restored("2026-12-05T00:00:00Z").reason == "RestoreTimeInFuture"
    assert restored("2026-11-30T00:00:00Z").reason == "RestoreTimeOutOfRange"
    waiting = restored("2026-12-04T11:30:00Z")
    assert waiting.reason == "RestoreTimeNotYetRestorable" and "2026-12-04T11:00:00Z" in waiting.message
    assert restored("2026-12-03T00:00:00Z") is None
    empty = RestoreSeen(source={**source, "status": {}}, secrets=read.secrets)
    obj = body(restore={"pointInTime": {"source": "src", "latest": True}})
    assert build(seen(obj, source=empty), OperatorConfig(), BUILDERS).problem.reason == "RestoreWindowEmpty"
    gone = RestoreSeen(source=source, secrets={"s3": keys})
    assert "the backup passphrase of src" in build(seen(obj, source=gone), OperatorConfig(), BUILDERS).problem.message


def test_backup_health_counts_the_daily_base_backup_too() -> None:
    from datetime import timedelta

    from kuberds.builders.settings import backup_plan
    from kuberds.contract.report import AgentReport
    from kuberds.operations.server_status import backup_condition

    obj = body(backup={"objectStore": STORE, "window": "03:00-04:00"})
    spec = parse(DBInstanceSpec, obj["spec"])
    server = BUILDERS.server(Owner.of(obj), spec, engine_for("postgres"), OperatorConfig(), claim_size="20Gi",
                             backup=backup_plan(Owner.of(obj), spec, spec.backup.object_store))  # fmt: skip

    def judged(last: str | None, created: str = "2026-12-01T00:00:00Z", at: datetime = NOW) -> tuple[str, str]:
        report = AgentReport(backup_healthy=True, backup_reason="Archiving", last_backup_time=last)
        (condition,) = backup_condition(server, report, created, at)
        return condition.status, condition.reason

    assert judged("2026-12-04T03:20:00Z") == ("True", "Archiving")
    assert judged("2026-12-04T03:20:00Z", at=NOW + timedelta(hours=17)) == ("True", "Archiving")
    assert judged("2026-12-04T03:20:00Z", at=NOW + timedelta(hours=18)) == ("False", "BackupOverdue"), (
        "within a day+window+1h"
    )
    assert judged("2026-12-02T03:20:00Z") == ("False", "BackupOverdue")
    assert judged(None, created="2026-12-04T11:30:00Z") == ("True", "Archiving"), "the first one is under way"
    assert judged(None) == ("False", "NoBackup")
    failing = AgentReport(backup_healthy=False, backup_reason="ArchiveFailing", last_backup_time="2026-12-04T03:20:00Z")
    assert backup_condition(server, failing, None, NOW)[0].reason == "ArchiveFailing"
    # No store anywhere: unhealthy while backups are asked for, and not when retentionDays is 0.
    for retention, expected in ((7, ("False", "NoObjectStore")), (0, ("True", "BackupsOff"))):
        unstored = parse(DBInstanceSpec, body(backup={"retentionDays": retention})["spec"])
        plain = BUILDERS.server(Owner.of(obj), unstored, engine_for("postgres"), OperatorConfig(), claim_size="20Gi")
        (condition,) = backup_condition(plain, AgentReport(), None, NOW)
        assert (condition.status, condition.reason) == expected


def test_a_snapshot_restores_from_the_repository_it_recorded_after_its_source_is_gone() -> None:
    from kuberds.builders.snapshot import snapshot_repository

    source = body(backup={"objectStore": STORE})
    source["metadata"] = {**source["metadata"], "name": "gone", "uid": "u-gone"}
    recorded = snapshot_repository(source, parse(DBInstanceSpec, source["spec"]), OperatorConfig())
    assert recorded["path"] == "/kuberds/shop/gone/u-gone" and recorded["keySecretName"] == "gone-backup-key"
    snapshot = {"metadata": {"name": "final"}, "spec": {"source": {"dbInstance": "gone"}},
                "status": {"phase": "Available", "backupID": "L1F", "repository": recorded}}  # fmt: skip
    keys = {"s3": secret(AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk"), "gone-backup-key": secret(key="p")}
    read = RestoreSeen(snapshot=snapshot, source=None, secrets=keys)
    plan = build(seen(body(restore={"fromSnapshot": "final"}), source=read), OperatorConfig(), BUILDERS)
    assert plan.problem is None
    settings = next(o for o in plan.apply if o["kind"] == "ConfigMap")
    restore = json.loads(settings["data"]["agent.json"])["restore"]
    assert (restore["repository"]["path"], restore["snapshot_set"]) == ("/kuberds/shop/gone/u-gone", "L1F")
    missing_key = RestoreSeen(snapshot=snapshot, source=None, secrets={"s3": keys["s3"]})
    problem = build(seen(body(restore={"fromSnapshot": "final"}), source=missing_key), OperatorConfig(),
                    BUILDERS).problem  # fmt: skip
    assert "gone-backup-key (the backup passphrase of DBSnapshot final)" in problem.message


def test_volumes_of_an_earlier_server_of_the_name_are_not_reused() -> None:
    obj = body()
    obj["metadata"]["creationTimestamp"] = "2026-12-04T10:00:00Z"
    old = {"metadata": {"name": "data-orders-0", "creationTimestamp": "2026-11-01T08:00:00Z"},
           "spec": {"resources": {"requests": {"storage": "20Gi"}}}}  # fmt: skip
    plan = build(seen(obj, claims=[old]), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "VolumesOfAnEarlierServer" and "data-orders-0" in plan.problem.message
    assert plan.apply == []
    new = {**old, "metadata": {"name": "data-orders-0", "creationTimestamp": "2026-12-04T10:00:03Z"}}
    assert build(seen(obj, claims=[new]), OperatorConfig(), BUILDERS).problem is None, "its own, made a moment ago"


def test_credentials_made_by_an_earlier_kuberds_gain_the_missing_keys_and_keep_the_others() -> None:
    old = secret("u-1", **{"superuser-password": "s", "replication-password": "r"})
    made: list[int] = []
    plan = build(seen(body(), secrets={"orders-master": secret("u-1", password="p"), "orders-agent-credentials": old}),
                 OperatorConfig(), BUILDERS, tokens(made))  # fmt: skip
    assert "orders-agent-credentials" not in [o["metadata"]["name"] for o in plan.create]
    [(name, patch)] = plan.secret_patches
    assert name == "orders-agent-credentials"
    assert set(patch["stringData"]) == {"api-password", "rewind-password", "proxy-password", "proxy-console-password"}
    assert all(value.startswith("token-") for value in patch["stringData"].values())


def test_volumes_autoscaling_grew_are_wanted_beyond_the_spec() -> None:
    obj = body(storage={"size": "20Gi"})
    obj["status"] = {"storage": {"autoscaledSize": "30Gi", "lastGrowTime": "2026-12-04T10:00:00Z"}}
    sts = {"metadata": {"name": "orders", "namespace": "shop"},
           "spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "30Gi"}}}}]}}  # fmt: skip
    claims = [{"metadata": {"name": "data-orders-0"},
               "spec": {"resources": {"requests": {"storage": "30Gi"}}, "storageClassName": "fast"}}]  # fmt: skip
    plan = build(seen(obj, stateful_set=sts, claims=claims), OperatorConfig(), BUILDERS)
    assert plan.claim_patches == [] and plan.recreate_stateful_set is None
    # A spec raised past what autoscaling chose wins.
    obj["spec"]["storage"]["size"] = "40Gi"
    plan = build(seen(obj, stateful_set=sts, claims=claims, storage_classes={"fast": {"allowVolumeExpansion": True}}),
                 OperatorConfig(), BUILDERS)  # fmt: skip
    assert plan.claim_patches == [("data-orders-0", {"spec": {"resources": {"requests": {"storage": "40Gi"}}}})]
