"""The build step of a server pass, tested as data: what it read in, what it would write out."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import DBInstanceSpec
from kuberds.builders import certificates
from kuberds.config import OperatorConfig
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


def secret(**data: str) -> dict:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def tokens(counter: list[int]):
    def token(length: int) -> str:
        counter.append(length)
        return f"token-{len(counter)}"

    return token


def test_a_new_server_gets_its_credentials_a_ca_a_certificate_and_its_objects() -> None:
    made: list[int] = []
    plan = build(seen(body(backup={"objectStore": STORE})), OperatorConfig(), BUILDERS, tokens(made))
    assert plan.problem is None
    created = {o["metadata"]["name"]: o for o in plan.create}
    assert sorted(created) == ["orders-agent-credentials", "orders-backup-key", "orders-ca", "orders-master"]
    assert created["orders-master"]["stringData"]["password"].startswith("token-")
    assert set(created["orders-agent-credentials"]["stringData"]) == {
        "superuser-password", "replication-password", "api-password"}  # fmt: skip
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
        "orders-master": secret(password="p"),
        "orders-agent-credentials": secret(**{"api-password": "a"}),
        "orders-ca": secret(**{"ca.crt": ca.certificate, "ca.key": ca.key}),
    }
    # The served certificate from a first pass was signed by another CA: reissued from this one.
    again = build(seen(obj, secrets={**reads, "orders-tls": {"data": served}}), OperatorConfig(), BUILDERS)
    assert again.create == [] and "not issued by the server's CA" in again.events[0][1]
    tls = next(o for o in again.apply if o["metadata"]["name"] == "orders-tls")
    settled = build(seen(obj, secrets={**reads, "orders-tls": {"data": tls["data"]}}), OperatorConfig(), BUILDERS)
    assert settled.create == [] and settled.events == []
    assert [o["metadata"]["name"] for o in settled.apply if o["kind"] == "Secret"] == []


def test_a_missing_secret_reference_is_a_condition_and_nothing_is_written() -> None:
    plan = build(seen(body(masterUserSecretName="byo")), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "SecretNotFound" and "masterUserSecretName" in plan.problem.message
    assert plan.create == plan.apply == []
    wrong = build(seen(body(masterUserSecretName="byo"), secrets={"byo": secret(user="x")}), OperatorConfig(),
                  BUILDERS)  # fmt: skip
    assert wrong.problem.reason == "SecretInvalid" and "password" in wrong.problem.message


def test_an_engine_without_a_data_plane_is_told_so() -> None:
    plan = build(seen(body(engine="mariadb")), OperatorConfig(), BUILDERS)
    assert plan.problem.reason == "EngineNotSupported" and plan.apply == []


def test_a_restore_from_a_snapshot_that_is_not_there_waits_with_a_condition() -> None:
    plan = build(seen(body(restore={"fromSnapshot": "gone"}), source=RestoreSeen()), OperatorConfig(), BUILDERS)
    assert (plan.problem.reason, plan.retry_in) == ("SnapshotNotFound", 15)


def test_volumes_grow_only_where_the_storage_class_can_expand() -> None:
    sts = {"spec": {"volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "20Gi"}}}}]}}

    def claim(name: str, size: str, storage_class: str) -> dict:
        return {"metadata": {"name": name},
                "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": storage_class}}  # fmt: skip

    obj = body(storage={"size": "30Gi"})
    grows = seen(obj, stateful_set=sts, claims=[claim("data-orders-0", "20Gi", "fast")],
                 storage_classes={"fast": {"allowVolumeExpansion": True}})  # fmt: skip
    plan = build(grows, OperatorConfig(), BUILDERS)
    assert plan.claim_patches == [("data-orders-0", {"spec": {"resources": {"requests": {"storage": "30Gi"}}}})]
    assert (plan.storage.status, plan.storage.reason) == ("False", "Resizing")
    fixed = seen(obj, stateful_set=sts, claims=[claim("data-orders-0", "20Gi", "fixed")],
                 storage_classes={"fixed": {}})  # fmt: skip
    plan = build(fixed, OperatorConfig(), BUILDERS)
    assert plan.claim_patches == [] and plan.storage.reason == "ExpansionNotSupported"
    sts_spec = next(o for o in plan.apply if o["kind"] == "StatefulSet")["spec"]
    assert sts_spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_the_pass_reads_the_secrets_it_may_need_and_no_others() -> None:
    spec = parse(DBInstanceSpec, {"engine": "postgres", "tls": {"certificateSecretName": "corp"},
                                  "backup": {"objectStore": {**STORE, "caSecretName": "store-ca"},
                                             "encryption": {"keySecretName": "key"}}})  # fmt: skip
    assert secrets_to_read("orders", spec, OperatorConfig()) == [
        "orders-master", "orders-agent-credentials", "corp", "store-ca"]  # fmt: skip
