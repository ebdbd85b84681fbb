"""The proxy's builders and status, tested as data (a golden file plus what matters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuberds.agent.postgres.database import scram_matches, scram_verifier
from kuberds.agent.proxy import PauseWatch, ProxyPod, fingerprint
from kuberds.builders import dbinstance, proxy
from kuberds.builders.network_policy import network_policy
from kuberds.builders.server import endpoint_names
from kuberds.contract.proxy import HOLD_LIMIT_SECONDS, users_file
from kuberds.operations import agents
from kuberds.operations import proxy as hold
from kuberds.operations.server_status import ProxySeen, proxy_status
from tests.unit.test_builders import assert_golden, by_kind, make_server

GOLDEN = Path(__file__).parent / "golden"
PROXIED = {"multiAZ": True, "proxy": {"enabled": True}}


def test_proxy_objects_match_the_golden_file() -> None:
    assert_golden("dbinstance-proxy.yaml", proxy.proxy_objects(make_server(**PROXIED)))


def test_a_server_has_a_proxy_only_when_asked() -> None:
    assert proxy.proxy_objects(make_server()) == []
    kinds = by_kind(dbinstance.server_objects(make_server(**PROXIED)))
    for kind in ("ConfigMap", "Deployment", "PodDisruptionBudget"):
        assert "orders-proxy" in [o["metadata"]["name"] for o in kinds[kind]]
    assert "orders-proxy" in [s["metadata"]["name"] for s in kinds["Service"]]
    assert {"orders-proxy", "orders-proxy.shop.svc"} <= set(endpoint_names(make_server(**PROXIED)))
    assert "orders-proxy" not in endpoint_names(make_server())


def test_proxy_pods_meet_pod_security_restricted_and_see_only_their_two_keys() -> None:
    server = make_server(**PROXIED)
    deployment = proxy.deployment(server, proxy.writer_pool(server))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    keys = [e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]]
    assert keys == ["proxy-password", "proxy-console-password"]
    assert container["args"] == ["proxy", "postgres"]
    run = next(v for v in pod["volumes"] if v["name"] == "run")
    assert run["emptyDir"]["medium"] == "Memory", "the user list holds passwords: never on a disk"
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {"topology.kubernetes.io/zone",
                                                                            "kubernetes.io/hostname"}  # fmt: skip
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_a_changed_pool_is_reloaded_by_the_pods_not_rolled() -> None:
    def template(**pool: object) -> dict:
        server = make_server(**{**PROXIED, "proxy": {"enabled": True, **pool}})
        return proxy.deployment(server, proxy.writer_pool(server))["spec"]["template"]

    assert template(defaultPoolSize=30) == template(), "a new pool size must not disconnect clients"
    servers = [make_server(**{**PROXIED, "proxy": {"enabled": True, "defaultPoolSize": n}}) for n in (20, 30)]
    configs = [proxy.config_map(s, proxy.writer_pool(s)) for s in servers]
    assert configs[0]["data"] != configs[1]["data"]


def test_the_pod_notices_a_changed_configuration_or_certificate(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    files = {"config_file": tmp_path / "pgbouncer.ini", "hba_file": tmp_path / "pg_hba.conf",
             "tls_dir": tmp_path / "tls", "run_dir": tmp_path / "run"}  # fmt: skip
    pod = ProxyPod(**files, port=1, metrics_port=0, user=None, program="pgbouncer", users_file="userlist.txt",
                   proxy_password="a", console_password="b")  # fmt: skip
    pod.config_file.write_text("[pgbouncer]\ndefault_pool_size = 20\n")
    before = fingerprint(pod)
    (tmp_path / "proxy.log").write_text("logs do not count")
    assert fingerprint(pod) == before
    pod.config_file.write_text("[pgbouncer]\ndefault_pool_size = 30\n")
    changed = fingerprint(pod)
    assert changed != before
    (tmp_path / "tls" / "tls.crt").write_text("renewed")
    assert fingerprint(pod) != changed


@pytest.mark.parametrize(
    ("tls", "client", "server"),
    [
        ({}, "prefer", "verify-full"),
        ({"require": True}, "require", "verify-full"),
        ({"certificateSecretName": "own-cert"}, "prefer", "require"),
        ({"enabled": False}, "disable", "disable"),
    ],
)
def test_tls_to_clients_and_to_the_server_follows_the_servers_tls(tls: dict, client: str, server: str) -> None:
    settings = proxy.pool_settings(make_server(**PROXIED, tls=tls))
    assert (settings.client_tls, settings.server_tls) == (client, server)
    files = make_server(**PROXIED, tls=tls).engine.proxy.config(settings)
    ini = files["pgbouncer.ini"]
    assert f"client_tls_sslmode = {client}" in ini and f"server_tls_sslmode = {server}" in ini
    assert ("server_tls_ca_file" in ini) == (server == "verify-full")
    # Verified against the writer Service's name, which the issued certificate carries.
    assert "* = host=orders.shop.svc port=5432 auth_user=kuberds_proxy" in ini


def test_only_clients_log_in_to_the_pools_and_only_the_console_user_to_the_console() -> None:
    files = make_server().engine.proxy.config(proxy.pool_settings(make_server(**PROXIED)))
    hba = files["pg_hba.conf"].splitlines()
    assert hba[:3] == [
        "host pgbouncer kuberds_console 0.0.0.0/0 scram-sha-256",
        "host all kuberds_console 0.0.0.0/0 reject",
        "host all kuberds_proxy 0.0.0.0/0 reject",
    ]
    assert "host all all 0.0.0.0/0 scram-sha-256" in hba
    required = make_server().engine.proxy.config(proxy.pool_settings(make_server(**PROXIED, tls={"require": True})))
    assert "hostnossl all all 0.0.0.0/0 reject" in required["pg_hba.conf"].splitlines()
    assert "auth_type = hba" in files["pgbouncer.ini"]


def test_the_pools_share_the_servers_connections_like_rds_proxy() -> None:
    # db.t3.micro: max_connections 112, 10 kept for the engine, shared by two proxy pods.
    assert proxy.pool_settings(make_server(**PROXIED)).max_server_connections == 51
    assert proxy.pool_problem(make_server(**PROXIED)) is None
    big = make_server(multiAZ=True, proxy={"enabled": True, "defaultPoolSize": 200})
    assert "proxy.defaultPoolSize 200 is above the 102 connections" in proxy.pool_problem(big)
    assert proxy.proxy_objects(big) == [], "a pool the server cannot serve is not deployed"
    tuned = make_server(multiAZ=True, proxy={"enabled": True, "defaultPoolSize": 200},
                        parameters={"max_connections": "500"})  # fmt: skip
    assert proxy.pool_problem(tuned) is None


def test_proxy_status_says_why_it_is_not_ready() -> None:
    on, off = make_server(**PROXIED), make_server()
    assert proxy_status(off, None, {}) == ({}, [])
    fields, [condition] = proxy_status(off, None, {"proxyEndpoint": "x"})
    assert fields == {"proxyEndpoint": None, "proxyReaderEndpoint": None} and condition.reason == "ProxyDisabled"
    assert proxy_status(on, None, {}) == ({"proxyEndpoint": "orders-proxy.shop.svc:5432"}, [])
    assert proxy_status(on, ProxySeen(None), {})[1][0].reason == "Deploying"
    waiting = ProxySeen({"status": {"replicas": 2}})
    assert proxy_status(on, waiting, {})[1][0].reason == "NoProxyPodReady"
    [ready] = proxy_status(on, ProxySeen({"status": {"readyReplicas": 1}}), {})[1]
    assert (ready.status, ready.message) == ("True", "1 of 2 proxy pods ready")
    big = make_server(multiAZ=True, proxy={"enabled": True, "defaultPoolSize": 200})
    fields, [refused] = proxy_status(big, None, {})
    assert fields == {"proxyEndpoint": None, "proxyReaderEndpoint": None}
    assert (refused.status, refused.reason) == ("False", "InvalidProxy")


def test_a_verifier_is_kept_while_the_password_is_the_same() -> None:
    verifier = scram_verifier("s3cret-pass")
    assert scram_matches(verifier, "s3cret-pass")
    assert not scram_matches(verifier, "another")
    assert not scram_matches("md5abcdef", "s3cret-pass") and not scram_matches(None, "x")
    assert scram_verifier("s3cret-pass") != verifier, "a new verifier has a new salt"


def test_the_user_list_refuses_what_would_break_its_quoting() -> None:
    assert users_file("a", "b") == '"kuberds_proxy" "a"\n"kuberds_console" "b"\n'
    for bad in ('x"y', "x\ny", ""):
        with pytest.raises(ValueError):
            users_file(bad, "b")


def test_a_pause_left_behind_by_a_vanished_operator_is_resumed_by_the_pod() -> None:
    now = [0.0]
    resumed: list[float] = []
    watch = PauseWatch(lambda: resumed.append(now[0]), limit=90, clock=lambda: now[0])
    watch.saw("2026-12-04 14:30:01.618 UTC [21072] LOG PAUSE command issued")
    now[0] = 60
    assert not watch.check() and resumed == []
    watch.saw("LOG RESUME command issued")
    now[0] = 200
    assert not watch.check(), "resumed by the operator: nothing to do"
    watch.saw("LOG PAUSE command issued")
    now[0] = 291
    assert watch.check() and resumed == [291]
    assert not watch.check(), "once"


def test_the_operator_never_holds_a_proxy_as_long_as_the_pod_tolerates() -> None:
    longest = (hold.PAUSE_TIMEOUT_SECONDS + agents.TIMEOUT_SECONDS + hold.MOVE_TIMEOUT_SECONDS + hold.SETTLE_SECONDS
               + 2 * hold.CONSOLE_TIMEOUT_SECONDS)  # fmt: skip
    assert longest < HOLD_LIMIT_SECONDS


def test_a_read_only_proxy_is_made_when_asked_in_front_of_the_readers() -> None:
    server = make_server(multiAZ=True, proxy={"enabled": True, "readerEndpoint": True})
    names = [o["metadata"]["name"] for o in proxy.proxy_objects(server)]
    assert names.count("orders-proxy") == 5 and names.count("orders-proxy-ro") == 5
    reader = proxy.reader_pool(server)
    assert "* = host=orders-ro.shop.svc port=5432" in proxy.config_map(server, reader)["data"]["pgbouncer.ini"]
    labels = proxy.deployment(server, reader)["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/component"] == "proxy-reader", "not paused, not counted as the writer's proxy"
    assert "orders-proxy-ro.shop.svc" in endpoint_names(server)
    fields, _ = proxy_status(server, None, {})
    assert fields == {
        "proxyEndpoint": "orders-proxy.shop.svc:5432",
        "proxyReaderEndpoint": "orders-proxy-ro.shop.svc:5432",
    }
    admitted = [p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
                for p in network_policy(server)["spec"]["ingress"][2]["from"] if p.get("podSelector")]  # fmt: skip
    assert {"proxy", "proxy-reader"} <= set(admitted)
