"""kubectl kuberds, its pure parts: the status screen from realistic objects, the order of merged
logs, what the support bundle redacts, the arguments, the clients' command lines and the
objects that restore and snapshot create. The commands against an API server are in
tests/cluster/test_plugin.py, connect and logs against real pods in e2e/test_plugin.py."""

from __future__ import annotations

import base64
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kuberds.plugin import cli, kinds, logs, redact, report, restore
from kuberds.plugin import status as screen
from kuberds.plugin.connect import Login, client_command
from kuberds.plugin.errors import PluginError
from kuberds.plugin.text import age, duration, parse_precise

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str, message: str = "", minutes: float = 30, generation: int = 2):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": ago(minutes=minutes), "observedGeneration": generation}  # fmt: skip


def multi_az_instance() -> dict:
    """A Multi-AZ PostgreSQL DBInstance as the operator leaves it (builders/status.py's fields)."""
    return {
        "apiVersion": "kuberds.io/v1alpha1", "kind": "DBInstance",
        "metadata": {"name": "orders", "namespace": "shop", "generation": 2, "uid": "u-1",
                     "creationTimestamp": ago(days=3)},
        "spec": {"engine": "postgres", "instanceClass": "db.t3.micro", "multiAZ": True,
                 "storage": {"size": "20Gi", "autoscaling": {"maxSize": "100Gi"}},
                 "backup": {"retentionDays": 7, "window": "03:00-03:30"}},
        "status": {
            "phase": "Available", "observedGeneration": 2, "engineVersion": "15",
            "endpoint": "orders.shop.svc:5432", "readerEndpoint": "orders-ro.shop.svc:5432",
            "currentPrimary": "orders-0", "readyInstances": 2,
            "members": [
                {"name": "orders-0", "role": "primary", "zone": "zone-a", "ready": True},
                {"name": "orders-1", "role": "replica", "zone": "zone-b", "ready": True, "lagSeconds": 0.4,
                 "synchronous": True},
            ],
            "masterUserSecretName": "orders-master", "certificateSecretName": "orders-tls",
            "earliestRestorableTime": ago(days=2), "latestRestorableTime": ago(seconds=30),
            "storage": {"requested": "20Gi", "allocated": "20Gi", "used": "3Gi", "freePercent": 85,
                        "maxSize": "100Gi"},
            "conditions": [
                condition("Available", "True", "MembersReady", "2/2 database pods ready; primary orders-0"),
                condition("BackupHealthy", "True", "Archiving", "WAL archived up to 000000010000000000000042"),
                condition("Ready", "True", "AllMembersReady", "2/2 database pods ready"),
                condition("Reconciled", "True", "Applied", "", generation=1),
            ],
        },
    }  # fmt: skip


def pod(name: str, zone_node: str, role: str, report: dict | None = None, restarts: int = 0) -> dict:
    annotations = {"kuberds.io/agent-status": json.dumps(report)} if report else {}
    return {
        "metadata": {"name": name, "labels": {"kuberds.io/role": role}, "annotations": annotations,
                     "creationTimestamp": ago(hours=5)},
        "spec": {"nodeName": zone_node, "containers": [{"name": "postgres"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "postgres", "restartCount": restarts, "state": {"running": {}}}]},
    }  # fmt: skip


def event(kind: str, name: str, reason: str, message: str, minutes: float, type_: str = "Normal", count: int = 1):
    return {"involvedObject": {"kind": kind, "name": name}, "reason": reason, "message": message, "type": type_,
            "lastTimestamp": ago(minutes=minutes), "count": count}  # fmt: skip


def test_the_status_screen_of_a_multi_az_instance() -> None:
    pods = [pod("orders-0", "node-a", "master", {"lastBackupTime": ago(hours=9)}, restarts=1),
            pod("orders-1", "node-b", "replica")]  # fmt: skip
    events = [event("DBInstance", "orders", "AllMembersReady", "2/2 database pods ready", 50),
              event("Pod", "orders-1", "Unhealthy", "Readiness probe failed", 40, "Warning", count=3),
              event("DBInstance", "orders", "CertificateIssued", "issued orders-tls", 55)]  # fmt: skip
    text = screen.render(multi_az_instance(), pods, events, snapshots=[], now=NOW)
    lines = text.splitlines()
    assert lines[0] == "DBInstance orders (namespace shop)"
    assert "  Engine:" in text and "postgres 15" in text and "db.t3.micro" in text
    assert any(line.split() == ["Multi-AZ:", "yes"] for line in lines)
    assert any("Endpoint:" in line and "orders.shop.svc:5432" in line for line in lines)
    assert any("Reader endpoint:" in line and "orders-ro.shop.svc:5432" in line for line in lines)
    assert "20Gi requested, 20Gi allocated, 3Gi used (85% free), autoscaling up to 100Gi" in text

    members = lines[lines.index("Members") + 1 :][:3]
    assert members[0].split() == ["POD", "ROLE", "ZONE", "READY", "LAG", "SYNC", "POD", "STATUS", "NODE", "RESTARTS",
                                  "AGE"]  # fmt: skip
    assert members[1].split() == ["orders-0", "primary", "zone-a", "yes", "-", "-", "Running", "node-a", "1", "5h"]
    assert members[2].split() == ["orders-1", "replica", "zone-b", "yes", "0.4s", "yes", "Running", "node-b", "0", "5h"]
    assert "TIER" not in members[0], "a column no member has is left out"

    backups = text.split("\nBackups\n")[1].split("\n\n")[0]
    assert "kept 7 days, daily in 03:00-03:30 UTC" in backups
    assert f"Last backup:               {ago(hours=9)} (9h ago)" in backups, "from the primary agent's report"
    assert f"{ago(days=2)} (2d ago)" in backups and f"{ago(seconds=30)} (30s ago)" in backups
    assert "BackupHealthy:             True Archiving: WAL archived up to 000000010000000000000042" in backups

    conditions = text.split("\nConditions\n")[1].split("\n\n")[0].splitlines()
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert conditions[1].split()[:4] == ["Available", "True", "MembersReady", "30m"]
    reconciled = next(line for line in conditions if "Reconciled" in line)
    assert "(for an older generation)" in reconciled

    recent = text.split("\nEvents (the last 15, oldest first)\n")[1].splitlines()
    assert [line.split()[3] for line in recent[1:]] == ["CertificateIssued", "AllMembersReady", "Unhealthy"]
    assert "Pod/orders-1" in recent[3] and recent[3].endswith("Readiness probe failed (x3)")


def test_the_screen_says_what_is_missing_or_behind() -> None:
    fresh = {"kind": "DBInstance", "metadata": {"name": "new", "namespace": "shop", "generation": 3},
             "spec": {"engine": "mariadb", "automationPaused": True}, "status": {"observedGeneration": 2}}  # fmt: skip
    text = screen.render(fresh, [], [], now=NOW)
    assert "(no status yet) (status is for generation 2; the spec is at 3) — automation paused" in text
    assert "mariadb (newest offered)" in text
    assert "  no members yet" in text and "  none yet" in text
    assert "none (the API server keeps events for an hour by default)" in text
    asked = {**fresh, "metadata": {**fresh["metadata"], "annotations": {kinds.SWITCHOVER_ANNOTATION: "new-1"}}}
    assert "requested (to new-1)" in screen.render(asked, [], [], now=NOW)


def test_the_screen_of_a_replica_a_cluster_and_caches() -> None:
    replica = {"kind": "ReadReplica", "metadata": {"name": "orders-rr", "namespace": "shop"},
               "spec": {"source": {"dbInstance": "orders"}, "instanceClass": "db.t3.small"},
               "status": {"phase": "Available", "replicaLagSeconds": 1.5, "currentPrimary": "orders-rr-0",
                          "source": {"kind": "DBInstance", "name": "orders", "engine": "postgres"},
                          "members": [{"name": "orders-rr-0", "role": "standbyLeader", "ready": True}]}}  # fmt: skip
    text = screen.render(replica, [], [], now=NOW)
    assert "DBInstance orders" in text and "Replica lag:" in text and "1.5s" in text
    assert "the source's (a replica that follows its source keeps none)" in text
    assert "orders-rr-0  standbyLeader  -     yes    1.5s" in text

    cluster = {"kind": "DBCluster", "metadata": {"name": "ledger", "namespace": "shop"},
               "spec": {"engine": "postgres", "readers": 2},
               "status": {"writer": "ledger-1", "readyReaders": 1,
                          "customEndpoints": [{"name": "batch", "endpoint": "ledger-batch.shop.svc:5432",
                                               "members": ["ledger-2"]}],
                          "members": [
                              {"name": "ledger-0", "role": "replica", "ready": False, "promotionTier": 0},
                              {"name": "ledger-1", "role": "primary", "ready": True, "promotionTier": 1}]}}  # fmt: skip
    text = screen.render(cluster, [], [], now=NOW)
    assert "2 wanted, 1 ready and within lag" in text and "ledger-batch.shop.svc:5432 → ledger-2" in text
    assert "Primary:" in text and "ledger-1" in text and "TIER" in text and "no pod" in text

    redis = {"kind": "CacheCluster", "metadata": {"name": "sessions", "namespace": "shop"},
             "spec": {"engine": "redis", "replicas": 1, "automaticFailover": True},
             "status": {"endpoint": "sessions.shop.svc:6379", "tlsPort": 6380, "authSecretName": "sessions-auth",
                        "conditions": [condition("Snapshots", "False", "Disabled", "no daily snapshots")]}}  # fmt: skip
    text = screen.render(redis, [], [], now=NOW)
    assert "a primary and 1 replica(s), automatic failover on" in text and "TLS port:" in text
    assert "Snapshots:  False Disabled: no daily snapshots" in text and "Last backup" not in text
    memcached = {"kind": "CacheCluster", "metadata": {"name": "c", "namespace": "shop"},
                 "spec": {"engine": "memcached", "numNodes": 3}}  # fmt: skip
    text = screen.render(memcached, [], [], now=NOW)
    assert "3 node(s)" in text and "Memcached keeps no data to back up" in text and "Primary" not in text


# ------------------------------------------------------------ logs


def test_log_lines_merge_in_time_order_to_the_nanosecond() -> None:
    agent = logs.parse_stream("orders-0", "postgres", "\n".join([
        "2026-05-01T12:00:00.5Z kuberds.agent INFO: starting Patroni",
        "2026-05-01T12:00:00.45Z 2026-05-01 12:00:00.450 UTC [57] LOG:  database system is ready",  # out of order
        "2026-05-01T12:00:01.000000002Z patroni INFO: no action. I am (orders-0), the leader with the lock",
        "a partial last line without a timestamp",
    ]))  # fmt: skip
    other = logs.parse_stream("orders-1", "postgres", "\n".join([
        "2026-05-01T12:00:00.123456789Z kuberds.agent INFO: starting Patroni",
        "2026-05-01T12:00:01.000000002Z patroni INFO: no action. I am (orders-1), a secondary",
        "2026-05-01T14:00:01+02:00 a line stamped in another zone: 12:00:01 UTC",
    ]))  # fmt: skip
    merged = [line.format() for line in logs.merge([agent, other])]
    assert merged == [
        "[orders-1/postgres] 2026-05-01T12:00:00.123456789Z kuberds.agent INFO: starting Patroni",
        "[orders-0/postgres] 2026-05-01T12:00:00.45Z 2026-05-01 12:00:00.450 UTC [57] LOG:  database system is ready",
        "[orders-0/postgres] 2026-05-01T12:00:00.5Z kuberds.agent INFO: starting Patroni",
        "[orders-1/postgres] 2026-05-01T14:00:01+02:00 a line stamped in another zone: 12:00:01 UTC",
        "[orders-0/postgres] 2026-05-01T12:00:01.000000002Z patroni INFO: no action. I am (orders-0), the leader "
        "with the lock",
        "[orders-0/postgres] a partial last line without a timestamp",
        "[orders-1/postgres] 2026-05-01T12:00:01.000000002Z patroni INFO: no action. I am (orders-1), a secondary",
    ]  # fmt: skip
    assert logs.merge([])[:1] == []
    assert agent[0].format(timestamps=False) == "[orders-0/postgres] 2026-05-01 12:00:00.450 UTC [57] LOG:  database " \
                                                "system is ready"  # fmt: skip


def test_times_and_durations() -> None:
    assert parse_precise("2026-05-01T12:00:00.1Z") > parse_precise("2026-05-01T12:00:00.09Z")
    assert parse_precise("2026-05-01T12:00:00+00:00") == (NOW, 0)
    assert parse_precise("not a time") is None
    assert age(ago(seconds=42), NOW) == "42s" and age(ago(hours=30), NOW) == "30h" and age(None, NOW) == "-"
    assert [duration(d) for d in ("45s", "10m", "1h30m", "2d", "90")] == [45, 600, 5400, 172800, 90]
    with pytest.raises(ValueError):
        duration("10 minutes")


# ------------------------------------------------------------ redaction


def test_secrets_keep_their_keys_and_lose_every_value() -> None:
    password = "c0rrect-h0rse-battery-staple"
    encoded = base64.b64encode(password.encode()).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
              "metadata": {"name": "orders-master", "managedFields": [{"manager": "kopf"}],
                           "annotations": {redact.LAST_APPLIED: json.dumps({"stringData": {"password": password}})}},
              "data": {"username": base64.b64encode(b"dbadmin").decode(), "password": encoded}}  # fmt: skip
    redacted = redact.redact_secret(secret)
    assert redacted["data"] == {"password": "REDACTED", "username": "REDACTED"}
    dumped = yaml.safe_dump(redacted)
    assert password not in dumped and encoded not in dumped and "managedFields" not in dumped
    assert redact.secret_values(secret) == {password, encoded}, "the username is no secret"


def test_text_that_looks_like_a_secret_is_scrubbed() -> None:
    cases = {
        "password=hunter2-long host=db": "password=REDACTED host=db",
        'export PGPASSWORD="s3cr3t value"': 'export PGPASSWORD="REDACTED"',
        '{"superuser-password": "abc123xyz", "port": 5432}': '{"superuser-password": "REDACTED", "port": 5432}',
        "auth_token: abcdef123456": "auth_token: REDACTED",
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/path": "s3://AKIAEXAMPLE:REDACTED@bucket/path",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----":
            "-----BEGIN RSA PRIVATE KEY-----REDACTED-----END RSA PRIVATE KEY-----",
        # Kept: names of Secrets, settings about passwords, and sentences.
        "masterUserSecretName: orders-master": "masterUserSecretName: orders-master",
        "password_encryption = scram-sha-256": "password_encryption = scram-sha-256",
        "FATAL:  password authentication failed for user x": "FATAL:  password authentication failed for user x",
        "SELECT usename, passwd FROM kuberds.lookup($1)": "SELECT usename, passwd FROM kuberds.lookup($1)",
        "require_secure_transport: on": "require_secure_transport: on",
    }  # fmt: skip
    for given, wanted in cases.items():
        assert redact.scrub_text(given) == wanted, given


def test_objects_are_scrubbed_by_field_and_environment_variable_names() -> None:
    pod_spec = {"containers": [{"name": "app", "env": [
        {"name": "DB_PASSWORD", "value": "literal-secret"},
        {"name": "KUBERDS_MASTER_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "orders-master", "key": "password"}}},
        {"name": "POD_NAME", "value": "orders-0"}]}],
        "auth": {"passwordSecretName": "app-user", "apiKey": "k-123456789"}}  # fmt: skip
    scrubbed = redact.scrub_object(pod_spec)
    env = scrubbed["containers"][0]["env"]
    assert env[0]["value"] == "REDACTED" and env[1] == pod_spec["containers"][0]["env"][1]
    assert env[2]["value"] == "orders-0"
    assert scrubbed["auth"] == {"passwordSecretName": "app-user", "apiKey": "REDACTED"}


@pytest.mark.parametrize("golden", sorted((Path(__file__).parent / "golden").glob("*.yaml")), ids=lambda p: p.name)
def test_what_kuberds_builds_carries_nothing_the_scrubber_takes_for_a_secret(golden: Path) -> None:
    """The settings ConfigMap (agent.json), the proxy's pgbouncer.ini, the pod templates: kuberds
    puts no secret in them, and the scrubber leaves them exactly as they are."""
    for obj in yaml.safe_load_all(golden.read_text()):
        if obj and obj["kind"] != "Secret":
            assert redact.scrub_object(obj) == obj, f"{obj['kind']} {obj['metadata']['name']}"


def test_known_secret_values_go_wherever_they_appear() -> None:
    scrubber = redact.Scrubber({"Zq9-very-secret", "WnE5LXZlcnktc2VjcmV0"})
    assert scrubber.text("conn: user=a pw Zq9-very-secret; b64 WnE5LXZlcnktc2VjcmV0") == "conn: user=a pw REDACTED; " \
                                                                                          "b64 REDACTED"  # fmt: skip


def test_a_bundle_is_a_tar_gz_of_its_files(tmp_path: Path) -> None:
    bundle = report.Bundle("kuberds-report-shop-orders-20260501-120000")
    bundle.add_yaml("object.yaml", multi_az_instance())
    bundle.add("logs/orders-0/postgres.log", "line\n")
    path = tmp_path / "bundle.tar.gz"
    assert report.write(bundle, str(path)) == path.stat().st_size
    with tarfile.open(path) as archive:
        names = archive.getnames()
        assert names == ["kuberds-report-shop-orders-20260501-120000/logs/orders-0/postgres.log",
                         "kuberds-report-shop-orders-20260501-120000/object.yaml"]  # fmt: skip
        obj = yaml.safe_load(archive.extractfile(names[1]).read())
    assert obj["metadata"]["name"] == "orders"
    assert report.secret_refs({"masterUserSecretName": "m", "auth": {"users": [{"passwordSecretName": "u"}]},
                               "backup": {"objectStore": {"credentialsSecretName": "s3", "caSecretName": "ca"}}}) \
        == {"m", "u", "s3", "ca"}  # fmt: skip


# ------------------------------------------------------------ arguments and clients


def test_arguments_parse_as_kubectl_users_expect() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["-n", "shop", "--context", "prod", "status", "orders"])
    after = parser.parse_args(["status", "orders", "--namespace", "shop", "--kubeconfig", "/k"])
    assert (before.namespace, before.context, before.verb, before.name) == ("shop", "prod", "status", "orders")
    assert (after.namespace, after.kubeconfig, after.context) == ("shop", "/k", None)
    logs_args = parser.parse_args(["logs", "orders", "--since", "10m", "--tail", "50", "--member", "orders-1"])
    assert (logs_args.since, logs_args.tail, logs_args.member) == (600, 50, "orders-1")
    connect = cli.parse(["connect", "orders", "--command", "select 1", "--", "-A", "-t", "--", "x"])
    assert (connect.command, connect.extra) == ("select 1", ["-A", "-t", "--", "x"])
    with pytest.raises(SystemExit):
        cli.parse(["status", "orders", "--", "-A"])
    restored = parser.parse_args(["restore", "--from-snapshot", "snap", "--as", "copy"])
    assert (restored.name, restored.from_snapshot, restored.new_name, restored.to) == (None, "snap", "copy", None)
    switch = parser.parse_args(["switchover", "orders", "--to", "orders-1", "--wait", "--timeout", "90s"])
    assert (switch.to, switch.wait, switch.timeout) == ("orders-1", True, 90)
    wrongs = (["restore", "orders", "--as", "x"], ["restore", "orders", "--to", "latest"], [],
              ["restore", "orders", "--to", "latest", "--from-snapshot", "s", "--as", "x"])  # fmt: skip
    for wrong in wrongs:
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
    assert kinds.kind_named("rr") is kinds.READREPLICA and kinds.kind_named("DBInstances") is kinds.DBINSTANCE
    with pytest.raises(PluginError, match="use one of DBInstance, DBCluster, ReadReplica or CacheCluster"):
        kinds.kind_named("pods")


def test_the_help_is_readable(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: kubectl kuberds")
    for name in ("status", "connect", "switchover", "promote", "snapshot", "restore", "pause", "resume", "logs",
                 "report"):  # fmt: skip
        assert f"    {name}" in text


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
def test_the_password_goes_in_the_environment_never_on_the_command_line(engine: str) -> None:
    login = Login(engine, "dbadmin", "app", "Pa55-w0rd-xyz", tls=True, ca_file="/tmp/x/ca.crt")
    argv, env = client_command(login, 40123, command="select 1")
    assert not any("Pa55-w0rd-xyz" in arg for arg in argv)
    variable = {"postgres": "PGPASSWORD", "mariadb": "MYSQL_PWD", "redis": "REDISCLI_AUTH"}[engine]
    assert env == {variable: "Pa55-w0rd-xyz"}
    if engine == "postgres":
        assert argv[:2] == ["psql", "host=127.0.0.1 port=40123 user=dbadmin dbname=app sslmode=verify-ca "
                                    "sslrootcert=/tmp/x/ca.crt"]  # fmt: skip
        assert argv[-2:] == ["-c", "select 1"]
    elif engine == "mariadb":
        assert argv == ["mariadb", "--host=127.0.0.1", "--port=40123", "--user=dbadmin", "--ssl-ca=/tmp/x/ca.crt",
                        "app", "--batch", "-e", "select 1"]  # fmt: skip
    else:
        assert argv == ["redis-cli", "-h", "127.0.0.1", "-p", "40123", "--tls", "--cacert", "/tmp/x/ca.crt",
                        "select", "1"]  # fmt: skip
    plain, _ = client_command(Login(engine, "u", "my db", "p", tls=False), 5, extra=["-q"])
    assert not any("ssl" in a or "tls" in a for a in plain)
    if engine == "postgres":
        assert plain == ["psql", "host=127.0.0.1 port=5 user=u dbname='my db'", "-q"]


# ------------------------------------------------------------ what restore and snapshot create


def test_a_point_in_time_restore_copies_the_sources_shape() -> None:
    source = multi_az_instance()
    source["spec"] |= {"databaseName": "shop", "masterUserSecretName": "byo", "deletionProtection": True,
                       "tls": {"enabled": True, "require": True, "certificateSecretName": "corp"},
                       "backup": {"retentionDays": 3, "objectStore": {"bucket": "b", "credentialsSecretName": "s3"},
                                  "encryption": {"enabled": True, "keySecretName": "orders-backup-key"}}}  # fmt: skip
    source["status"]["storage"]["autoscaledSize"] = "30Gi"
    made = restore.point_in_time(kinds.DBINSTANCE, source, "orders-before", "2026-05-01T11:00:00Z")
    assert made["kind"] == "DBInstance" and made["metadata"] == {"name": "orders-before"}
    body = made["spec"]
    assert body["restore"] == {"pointInTime": {"source": "orders", "time": "2026-05-01T11:00:00Z"}}
    assert (body["engine"], body["instanceClass"], body["multiAZ"], body["databaseName"]) == (
        "postgres", "db.t3.micro", True, "shop")  # fmt: skip
    assert body["storage"] == {"size": "30Gi", "autoscaling": {"maxSize": "100Gi"}}, "the size the volumes grew to"
    assert body["tls"] == {"enabled": True, "require": True}, "a user's certificate names the source's hosts"
    assert body["backup"] == {"retentionDays": 3, "objectStore": {"bucket": "b", "credentialsSecretName": "s3"},
                              "encryption": {"enabled": True}}  # fmt: skip
    assert "masterUserSecretName" not in body and "deletionProtection" not in body
    latest = restore.point_in_time(kinds.DBINSTANCE, source, "orders-now", None)["spec"]["restore"]
    assert latest == {"pointInTime": {"source": "orders", "latest": True}}
    with pytest.raises(PluginError, match="no point-in-time restore"):
        restore.point_in_time(kinds.CACHECLUSTER, {"metadata": {"name": "c"}}, "x", None)


def test_restore_times() -> None:
    assert restore.restore_time("latest", NOW) is None
    assert restore.restore_time("2026-05-01 13:30:00+02:00", NOW) == "2026-05-01T11:30:00Z"
    for wrong, said in (("yesterday", "give `latest`"), ("2026-05-02T00:00:00Z", "in the future")):
        with pytest.raises(PluginError, match=said):
            restore.restore_time(wrong, NOW)
    source = multi_az_instance()
    assert restore.window_warning(source, ago(days=1)) is None
    assert "before orders's earliest" in restore.window_warning(source, ago(days=5))


def test_snapshots_and_restores_from_them() -> None:
    source = multi_az_instance()
    body = restore.snapshot_body(kinds.DBINSTANCE, source, "orders-snap", retain=True)
    assert body == {"apiVersion": "kuberds.io/v1alpha1", "kind": "DBSnapshot", "metadata": {"name": "orders-snap"},
                    "spec": {"source": {"dbInstance": "orders"}, "deletionPolicy": "Retain"}}  # fmt: skip
    name = restore.default_snapshot_name("a" * 52, NOW)
    assert len(name) <= 63 and name.endswith("-20260501-120000")
    with pytest.raises(PluginError, match="cannot be snapshotted"):
        restore.snapshot_body(kinds.READREPLICA, source, "x", retain=False)
    snapshot = {"metadata": {"name": "orders-snap"}, "spec": body["spec"], "status": {"engine": "postgres"}}
    copied = restore.from_snapshot(snapshot, source, "orders-copy")
    assert copied["kind"] == "DBInstance" and copied["spec"]["restore"] == {"fromSnapshot": "orders-snap"}
    assert copied["spec"]["instanceClass"] == "db.t3.micro"
    bare = restore.from_snapshot(snapshot, None, "bare")["spec"]
    assert bare == {"engine": "postgres", "restore": {"fromSnapshot": "orders-snap"}}
    redis = {"kind": "CacheCluster", "metadata": {"name": "sessions"},
             "spec": {"engine": "redis", "replicas": 1,
                      "auth": {"secretName": "mine", "users": [{"name": "app"}]}}}  # fmt: skip
    cache_snap = {"metadata": {"name": "s1"}, "spec": {"source": {"cacheCluster": "sessions"}},
                  "status": {"engine": "redis"}}  # fmt: skip
    made = restore.from_snapshot(cache_snap, redis, "sessions-copy")
    assert made["kind"] == "CacheCluster" and made["spec"]["auth"] == {"users": [{"name": "app"}]}
    with pytest.raises(PluginError, match="is of a redis server"):
        restore.from_snapshot(cache_snap, source, "wrong")


# ------------------------------------------------------------ what the plugin shares with the operator


def test_the_names_the_plugin_shares_with_the_operator_are_the_operators() -> None:
    from kuberds.api import requests
    from kuberds.api.v1alpha1 import KINDS
    from kuberds.builders import cache_spec, meta, names, proxy, routing, server
    from kuberds.contract import ROLE_LABEL

    assert (kinds.SWITCHOVER_ANNOTATION, kinds.ANY_MEMBER) == (requests.SWITCHOVER_ANNOTATION, requests.ANY_MEMBER)
    assert (kinds.INSTANCE_LABEL, kinds.OWNER_KIND_LABEL, kinds.ROLE_LABEL) == (
        meta.INSTANCE_LABEL, meta.OWNER_KIND_LABEL, ROLE_LABEL)  # fmt: skip
    assert (kinds.DATABASE, kinds.CACHE, kinds.PROXY) == (server.DATABASE, cache_spec.CACHE, proxy.PROXY)
    assert kinds.SERVICE_NAME_LABEL == routing.SERVICE_NAME_LABEL
    assert names.master_secret("orders") == "orders-master" and names.tls_secret("orders") == "orders-tls"
    by_kind = {k.kind: k for k in KINDS}
    for info in kinds.ALL_KINDS:
        assert (info.plural, info.short_names) == (by_kind[info.kind].plural, by_kind[info.kind].short_names)
        assert info.owner_label == by_kind[info.kind].owner_label


def test_the_bundle_readme_names_the_kind() -> None:
    assert "the DBInstance itself" in report.README.format(kind="DBInstance")


def test_a_request_is_dated_by_the_api_servers_clock() -> None:
    from datetime import UTC, datetime

    from kuberds.plugin.requests import asked_moment

    fields = [{"manager": "kopf", "time": "2026-12-05T10:00:00Z"},
              {"manager": "kubectl-kuberds", "time": "2026-12-05T10:00:07Z"}]  # fmt: skip
    patched = {"metadata": {"managedFields": fields}}
    assert asked_moment(patched) == datetime(2026, 12, 5, 10, 0, 7, tzinfo=UTC)
    assert (datetime.now(UTC) - asked_moment({})).total_seconds() < 5  # no managedFields: this machine's clock
