"""A ReadReplica's decision as data: whom it follows and how, the limit per source, a source
that goes, the credentials it copies, and its status."""

from __future__ import annotations

import base64

from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import ReadReplicaSpec
from kuberds.builders import readreplica as build
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.report import AgentReport
from kuberds.engines import engine_for
from kuberds.handlers.readreplica import with_remembered_source
from kuberds.operations.rollout import Members
from kuberds.operations.server_status import replica_status

CONFIG = OperatorConfig()
STORE = {"bucket": "b", "endpoint": "https://s3:443", "credentialsSecretName": "s3"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def source(**spec) -> dict:
    return {"metadata": {"name": "src", "namespace": "ns", "uid": "u-src"},
            "spec": {"engine": "postgres", **spec}, "status": {}}  # fmt: skip


def replica(status: dict | None = None, **spec) -> tuple[ReadReplicaSpec, dict]:
    body = {"kind": "ReadReplica",
            "metadata": {"name": "rr", "namespace": "ns", "uid": "u-rr", "creationTimestamp": "2026-12-04T10:00:00Z"},
            "spec": {"source": {"dbInstance": "src"}, **spec}, "status": status or {}}  # fmt: skip
    return parse(ReadReplicaSpec, body["spec"]), body


def test_a_replica_follows_the_sources_endpoint_verified_by_its_ca() -> None:
    spec, body = replica()
    tls = {"data": {"ca.crt": b64("CA PEM")}}
    decision = build.follow(spec, body, source(databaseName="shop"), tls, [], CONFIG)
    follow = decision.follow
    assert decision.problem is None and decision.source_condition.status == "False"
    assert (follow.standby.host, follow.standby.port) == ("src.ns.svc", 5432)
    assert (follow.standby.ssl_mode, follow.standby.ca_bundle) == ("verify-full", "CA PEM")
    assert not follow.standby.seed_from_backup, "no backups at the source: a base backup seeds it"
    assert follow.source["uid"] == "u-src" and follow.source["databaseName"] == "shop"
    server_spec = build.server_spec(spec, follow)
    assert server_spec.engine == "postgres" and server_spec.database_name == "shop" and server_spec.restore is None
    server = build.replica_server(Owner.of(body), server_spec, engine_for("postgres"), CONFIG, follow=follow,
                                  claim_size="20Gi")  # fmt: skip
    assert server.replicas == 1 and not server.synchronous and server.master_secret == "rr-master"
    assert server.pod_labels()["kuberds.io/replication-source"] == "src"


def test_seeded_from_backup_once_the_source_has_one_and_plain_without_tls() -> None:
    spec, body = replica()
    backed_up = source(backup={"objectStore": STORE}, tls={"enabled": False})
    backed_up["status"]["latestRestorableTime"] = "2026-12-04T09:00:00Z"
    follow = build.follow(spec, body, backed_up, None, [], CONFIG).follow
    assert follow.seed and follow.standby.seed_from_backup and follow.standby.ssl_mode == "prefer"
    restore = build.server_spec(spec, follow).restore
    assert restore.point_in_time.source == "src" and restore.point_in_time.latest


def test_the_sixteenth_replica_waits_and_a_made_one_stays() -> None:
    spec, body = replica()
    older = [(f"2026-12-04T09:{i:02d}:00Z", f"r{i}") for i in range(15)]
    refused = build.follow(spec, body, source(), None, older, CONFIG)
    assert refused.problem.reason == "TooManyReplicas" and "15 read replicas" in refused.problem.message
    newer = [(f"2026-12-04T11:{i:02d}:00Z", f"r{i}") for i in range(15)]
    assert build.follow(spec, body, source(), None, newer, CONFIG).problem is None, "the oldest 15 are within"
    made = build.follow(spec, body, source(), None, [], CONFIG).follow.source
    _, known = replica({"source": made})
    assert build.follow(spec, known, source(), None, older, CONFIG).problem is None, "a replica made stays"


def test_a_source_that_goes_or_is_made_again_leaves_the_replica_serving() -> None:
    spec, body = replica()
    assert build.follow(spec, body, None, None, [], CONFIG).problem.reason == "SourceNotFound"
    made = build.follow(spec, body, source(), None, [], CONFIG).follow.source
    _, known = replica({"source": made})
    gone = build.follow(spec, known, None, None, [], CONFIG)
    assert gone.problem is None and gone.follow.standby.host == "src.ns.svc"
    assert (gone.source_condition.status, gone.source_condition.reason) == ("True", "SourceDeleted")
    again = source()
    again["metadata"]["uid"] = "u-new"
    assert build.follow(spec, known, again, None, [], CONFIG).source_condition.reason == "SourceReplaced"
    promoted_spec, promoted = replica({"source": made}, promote=True)
    condition = build.follow(promoted_spec, promoted, None, None, [], CONFIG).source_condition
    assert (condition.status, condition.reason) == ("False", "Promoted")


def test_sources_not_offered_are_said() -> None:
    for source_field, reason in (({"dbCluster": "aurora"}, "SourceKindNotSupported"),
                                 ({"external": {"engine": "postgres", "host": "h", "credentialsSecretName": "c"}},
                                  "SourceKindNotSupported")):  # fmt: skip
        spec, body = replica(source=source_field)
        assert build.follow(spec, body, None, None, [], CONFIG).problem.reason == reason
    spec, body = replica()
    assert build.follow(spec, body, source(engine="mariadb"), None, [], CONFIG).problem.reason == "EngineNotSupported"


def test_credentials_are_copied_once_and_never_generated_in_their_place() -> None:
    spec, body = replica()
    follow = build.follow(spec, body, source(masterUsername="owner"), None, [], CONFIG).follow
    owner = Owner.of(body)
    master = {"data": {"password": b64("m")}}
    credentials = {"data": {"superuser-password": b64("s"), "replication-password": b64("r"),
                            "api-password": b64("theirs")}}  # fmt: skip
    made, waiting = build.inherited_secrets(owner, follow, master, credentials, {})
    assert waiting == [] and [s["metadata"]["name"] for s in made] == ["rr-master", "rr-agent-credentials"]
    assert made[0]["data"] == {"username": b64("owner"), "password": b64("m")}
    assert set(made[1]["data"]) == {"superuser-password", "replication-password"}, "its own HA API password"
    made, waiting = build.inherited_secrets(owner, follow, None, {"data": {}}, {})
    assert made == [] and waiting == ["rr-master", "rr-agent-credentials"]
    made, waiting = build.inherited_secrets(owner, follow, None, None, {"rr-master": True,
                                                                         "rr-agent-credentials": True})  # fmt: skip
    assert made == [] and waiting == []


def test_replica_status_from_its_leaders_report() -> None:
    spec, body = replica()
    follow = build.follow(spec, body, source(), None, [], CONFIG).follow
    server = build.replica_server(Owner.of(body), build.server_spec(spec, follow), engine_for("postgres"), CONFIG,
                                  follow=follow, claim_size="20Gi")  # fmt: skip
    fields, [condition] = replica_status(server, AgentReport(streaming=True, replica_lag_seconds=0.0), {})
    assert fields["replicaLagSeconds"] == 0.0 and (condition.status, condition.reason) == ("True", "Streaming")
    _, [condition] = replica_status(server, AgentReport(streaming=False, replica_lag_seconds=12.5), {})
    assert condition.reason == "NotStreaming" and "12.5 s behind" in condition.message
    _, [condition] = replica_status(server, AgentReport(), {})
    assert condition.reason == "Seeding"


def test_the_seed_is_decided_once_so_the_pod_never_changes_under_it() -> None:
    spec, body = replica()
    backed_up = source(backup={"objectStore": STORE})
    backed_up["status"]["latestRestorableTime"] = "2026-12-04T09:00:00Z"
    made = build.follow(spec, body, backed_up, None, [], CONFIG).follow.source
    assert made["seededFromBackup"] is True
    _, known = replica({"source": made})
    for later in (source(), None):  # the source's backups gone, or the source itself
        follow = build.follow(spec, known, later, None, [], CONFIG).follow
        assert follow.seed and build.server_spec(spec, follow).restore is not None, later


def test_a_refresh_reads_the_replica_afresh_until_its_copy_knows_the_source() -> None:
    # The index's copy can predate the first pass's status.source write; its pods' events
    # must not find the replica "not known yet" (the last of them would be lost).
    _, stale = replica()
    _, known = replica(status={"source": {"name": "src", "engine": "postgres", "port": 5432}})
    reads: list[str] = []

    def read_body() -> dict:
        reads.append("get")
        return known

    seen = with_remembered_source(Members(stale, [], [], None, {}), read_body)
    assert seen.body is known and reads == ["get"]
    assert with_remembered_source(Members(known, [], [], None, {}), read_body).body is known and reads == ["get"]
    gone = with_remembered_source(Members(stale, [], [], None, {}), lambda: None)
    assert gone.body is stale, "a replica deleted meanwhile: the copy as it was"
    assert with_remembered_source(Members(None, [], [], None, {}), read_body).body is None and reads == ["get"]
