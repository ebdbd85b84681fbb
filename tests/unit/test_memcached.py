"""Memcached: the Auto Discovery protocol, memcached's command line, the parameter allow-list,
and the CacheCluster builders as data (a golden file plus the properties that matter)."""

from __future__ import annotations

import json

import pytest

from kuberds.agent.memcached.discovery import DiscoveryServer
from kuberds.api.classes import CACHE_NODE_TYPES
from kuberds.api.schema import parse
from kuberds.api.v1alpha1 import CacheClusterSpec
from kuberds.builders import cache as build
from kuberds.builders import cache_status
from kuberds.builders.meta import Owner
from kuberds.config import OperatorConfig
from kuberds.contract.memcached import (
    CacheAgentConfig,
    Membership,
    Node,
    config_response,
    legacy_response,
    memcached_argv,
    next_membership,
    parse_config_response,
)
from kuberds.engines import cache_engine_for
from kuberds.engines.memcached import ENGINE, item_memory_mb
from tests.unit.test_builders import assert_golden, by_kind

NODES = (Node("c-0.c-pods.shop.svc.cluster.local", "10.0.0.5", 11211),
         Node("c-1.c-pods.shop.svc.cluster.local", "10.0.1.7", 11211))  # fmt: skip


# ---------------------------------------------------------------- the protocol


def test_config_answer_is_what_elasticache_clients_parse() -> None:
    payload = (b"12\nc-0.c-pods.shop.svc.cluster.local|10.0.0.5|11211 "
               b"c-1.c-pods.shop.svc.cluster.local|10.0.1.7|11211\n")  # fmt: skip
    answer = config_response(Membership(12, NODES))
    assert answer == b"CONFIG cluster 0 %d\r\n" % len(payload) + payload + b"\r\nEND\r\n"
    # How the usual client libraries read it: the third line, split on spaces, then on "|".
    lines = answer.split(b"\n")
    assert lines[1] == b"12"
    assert [e.split(b"|") for e in lines[2].split(b" ")][1] == [b"c-1.c-pods.shop.svc.cluster.local", b"10.0.1.7",
                                                                 b"11211"]  # fmt: skip
    assert parse_config_response(answer) == Membership(12, NODES)


def test_legacy_get_carries_the_same_payload() -> None:
    answer = legacy_response(Membership(3, NODES))
    assert answer.startswith(b"VALUE AmazonElastiCache:cluster 0 ")
    assert parse_config_response(answer) == Membership(3, NODES)


def test_version_grows_only_when_the_nodes_change() -> None:
    first = next_membership(None, NODES)
    assert first.version == 1
    assert next_membership(first, NODES) is first
    assert next_membership(first, NODES[:1]).version == 2


def test_membership_round_trips_through_the_config_map_data() -> None:
    membership = Membership(4, NODES)
    assert Membership.from_data(membership.data()) == membership
    assert Membership.from_data({"version": "x"}) is None
    assert Membership.from_data(None) is None


def test_discovery_server_answers_discovery_and_refuses_the_rest() -> None:
    server = DiscoveryServer("127.0.0.1", 0, "1.6.18")
    assert server.answer(b"config get cluster\r\n").startswith(b"SERVER_ERROR")
    server.update(Membership(2, NODES))
    server.update(None)  # a failed read keeps the last membership
    assert parse_config_response(server.answer(b"config get cluster\r\n")).version == 2
    assert server.answer(b"version\r\n") == b"VERSION 1.6.18\r\n"
    assert server.answer(b"set k 0 0 1\r\n") == b"ERROR\r\n"
    assert server.answer(b"quit\r\n") is None


# ---------------------------------------------------------------- memcached's command line


def test_argv_takes_flags_switches_and_extended_options() -> None:
    config = CacheAgentConfig("c", "shop", 11211, 361, {"max_item_size": "2097152", "cas_disabled": "true",
                                                          "idle_timeout": "60", "slab_automove": "1"})  # fmt: skip
    argv = memcached_argv("/usr/bin/memcached", config)
    assert argv[:5] == ["/usr/bin/memcached", "--port=11211", "--udp-port=0", "--listen=0.0.0.0",
                        "--memory-limit=361"]  # fmt: skip
    assert "--disable-cas" in argv and "--max-item-size=2097152" in argv
    assert argv[-1] == "--extended=idle_timeout=60,slab_automove=1"
    off = CacheAgentConfig("c", "shop", 11211, 361, {"cas_disabled": "false"})
    assert "--disable-cas" not in memcached_argv("/usr/bin/memcached", off, port=21211)
    assert "--port=21211" in memcached_argv("/usr/bin/memcached", off, port=21211)


# ---------------------------------------------------------------- the engine


@pytest.mark.parametrize(("given", "problem"), [
    ({"maxmemory": "1"}, "parameters.maxmemory: not a memcached parameter"),
    ({"threads": "0"}, "parameters.threads: 0 is below the minimum"),
    ({"threads": "4; rm -rf /"}, "parameters.threads: '4; rm -rf /' is not a number"),
    ({"max_item_size": "600000"}, "must be a multiple of it"),
    ({"idle_timeout": "1\n2"}, "control characters"),
])  # fmt: skip
def test_parameters_outside_the_allow_list_are_refused_by_name(given: dict, problem: str) -> None:
    assert problem in "; ".join(ENGINE.parameter_problems(given))


def test_agent_config_normalises_values_for_the_command_line() -> None:
    spec = make_cache(parameters={"Threads": "8", "chunk_size_growth_factor": "1.5", "cas_disabled": "ON"}).spec
    text = ENGINE.agent_config("c", "shop", 11211, CACHE_NODE_TYPES["cache.t3.micro"], spec)
    config = CacheAgentConfig.from_json(text)
    assert config.parameters == {"threads": "8", "chunk_size_growth_factor": "1.5", "cas_disabled": "true"}
    assert config.memory_mb == item_memory_mb(CACHE_NODE_TYPES["cache.t3.micro"]) == 361


def test_item_memory_leaves_room_below_the_pod_limit() -> None:
    for size in CACHE_NODE_TYPES.values():
        limit_mb = int(size.memory.removesuffix("Mi")) if size.memory.endswith("Mi") else int(size.memory[:-2]) * 1024
        assert 16 <= item_memory_mb(size) < limit_mb * 0.85


# ---------------------------------------------------------------- builders


def make_cache(**spec) -> build.Cache:
    parsed = parse(CacheClusterSpec, {"engine": "memcached", "numNodes": 3, **spec})
    owner = Owner("CacheCluster", "sessions", "shop", "0b7c5e0e-0000-4000-8000-00000000000c")
    return build.Cache(owner, parsed, cache_engine_for("memcached"), OperatorConfig())


def pod(name: str, ip: str | None, ready: bool, deleting: bool = False) -> dict:
    meta = {"name": name, **({"deletionTimestamp": "2026-12-05T00:00:00Z"} if deleting else {})}
    status = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        **({"podIP": ip} if ip else {}),
    }
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": status}


def test_objects_match_the_golden_file() -> None:
    cache = make_cache(parameters={"threads": "2"})
    assert_golden("cachecluster-memcached.yaml", build.cache_objects(cache, Membership(1, ())))


def test_nodes_run_restricted_without_volumes_and_spread_over_zones() -> None:
    objects = by_kind(build.cache_objects(make_cache(), Membership(1, ())))
    sts = objects["StatefulSet"][0]
    assert sts["spec"]["replicas"] == 3 and "volumeClaimTemplates" not in sts["spec"]
    spec = sts["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] and spec["securityContext"]["runAsUser"] == 999
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert container["resources"]["limits"]["memory"] == "512Mi"
    # The configuration endpoint routes to every node's discovery port, the headless one names the nodes.
    services = {s["metadata"]["name"]: s for s in objects["Service"]}
    assert services["sessions"]["spec"]["ports"][0]["targetPort"] == "discovery"
    assert services["sessions-pods"]["spec"]["clusterIP"] == "None"
    # The agent reads its own membership and writes only its own pods.
    role = objects["Role"][0]
    assert role["rules"][0]["resourceNames"] == ["sessions-discovery"]
    assert role["rules"][1]["resourceNames"] == ["sessions-0", "sessions-1", "sessions-2"]


def test_a_node_joins_when_first_ready_and_keeps_its_place_while_restarting() -> None:
    cache = make_cache()
    first = build.membership(cache, [pod("sessions-0", "10.0.0.1", True), pod("sessions-1", "10.0.0.2", False)], None)
    assert [n.ip for n in first.nodes] == ["10.0.0.1"] and first.version == 1
    both = build.membership(cache, [pod("sessions-0", "10.0.0.1", True), pod("sessions-1", "10.0.0.2", True)], first)
    assert [n.host.split(".")[0] for n in both.nodes] == ["sessions-0", "sessions-1"] and both.version == 2
    restarting = build.membership(cache, [pod("sessions-0", None, False), pod("sessions-1", "10.0.0.2", True)], both)
    assert restarting is both  # no address change, no new version: clients keep their hashing
    moved = build.membership(cache, [pod("sessions-0", "10.0.0.9", False), pod("sessions-1", "10.0.0.2", True)], both)
    assert moved.nodes[0].ip == "10.0.0.9" and moved.version == 3


def test_scaling_in_drops_the_nodes_beyond_num_nodes() -> None:
    listed = Membership(5, tuple(Node(make_cache().node_host(i), f"10.0.0.{i}", 11211) for i in range(3)))
    smaller = build.membership(make_cache(numNodes=2), [pod(f"sessions-{i}", f"10.0.0.{i}", True) for i in range(3)],
                               listed)  # fmt: skip
    assert [n.host.split(".")[0] for n in smaller.nodes] == ["sessions-0", "sessions-1"] and smaller.version == 6


def test_availability_counts_ready_nodes() -> None:
    available, ready = cache_status.availability(2, 3)
    assert (available.status, ready.status, ready.message) == ("True", "False", "2/3 nodes ready")


def test_agent_json_names_the_cluster_and_port() -> None:
    settings = build.settings_config_map(make_cache(port=11311))
    config = json.loads(settings["data"]["agent.json"])
    assert (config["cluster"], config["port"], config["namespace"]) == ("sessions", 11311, "shop")


def test_tls_asked_of_memcached_is_said_not_offered() -> None:
    condition = cache_status.tls_condition(make_cache())
    assert (condition.status, condition.reason) == ("False", "NotOffered")
    assert cache_status.tls_condition(make_cache(tls={"enabled": False})).reason == "Disabled"


def test_tls_is_served_only_with_require_on_the_node_and_discovery_ports() -> None:
    plain = make_cache()
    assert plain.tls_secret is None, "TLS beside plain TCP would take the Auto Discovery port"
    only = make_cache(tls={"require": True})
    assert (only.tls_secret, only.tls_port, only.extra_tls_port) == ("sessions-tls", 11211, None)
    objects = by_kind(build.cache_objects(only, Membership(1, ())))
    config = CacheAgentConfig.from_json(build.settings_config_map(only)["data"]["agent.json"])
    argv = memcached_argv("/usr/bin/memcached", config)
    assert "--enable-ssl" in argv and any(
        a.startswith("--extended=ssl_chain_cert=/etc/kuberds-tls/tls.crt,ssl_key=/etc/kuberds-tls/tls.key")
        for a in argv
    )
    pod = objects["StatefulSet"][0]["spec"]["template"]["spec"]
    assert {"name": "tls", "mountPath": "/etc/kuberds-tls", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert [p["name"] for p in pod["containers"][0]["ports"]] == ["memcached", "discovery", "metrics"]
    assert cache_status.tls_condition(only).message.startswith("only TLS on port 11211")
