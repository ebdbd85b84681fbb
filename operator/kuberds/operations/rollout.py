"""Members changed (a pod, claim or StatefulSet of a server): refresh status, and roll one
outdated pod if that is safe now — replicas first, the primary last after a switchover to
its (synchronous) standby.

Pod, volume and StatefulSet events of one server come in bursts: refreshes are coalesced,
one at a time per server (operations.coalesce).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import kopf

from kuberds.builders import names
from kuberds.builders.rollout import handover, next_pod_to_roll
from kuberds.builders.server import Server
from kuberds.builders.status import Member, member_from_pod, storage_condition
from kuberds.builders.tiers import after_failover, failed_over
from kuberds.contract import environment
from kuberds.contract.environment import secret_text
from kuberds.contract.report import AgentReport
from kuberds.engines import AgentRequest
from kuberds.kube import Kube
from kuberds.operations import agents, claim_template, proxy, routing, storage
from kuberds.operations.coalesce import Coalesced
from kuberds.operations.server_status import ProxySeen, publish_server_status
from kuberds.operations.status import post_event
from kuberds.quantity import to_bytes

log = logging.getLogger("kuberds")

# After a switchover request the pods' role labels change within seconds; until then (or
# after a refusal) a new request waits this long, and a pass is scheduled to look again.
SWITCHOVER_RETRY_SECONDS = 15.0
# A lease that moves this long after our last switchover request moved by a failover.
REQUESTED_WITHIN_SECONDS = 60.0
# How long after a failover promotion tiers may still move the writer (builders.tiers).
TIER_WINDOW_SECONDS = 120.0


@dataclass(frozen=True)
class Members:
    """What the indexes hold about one server right now."""

    body: dict | None  # as last seen; may lag behind a write (then a 409 makes us re-read)
    pods: list[dict]
    claims: list[dict]
    stateful_set: dict | None
    zones: dict[str, str]
    proxy: dict | None = None  # the proxy's Deployment
    proxy_pods: list[dict] = field(default_factory=list)
    leader: dict | None = None  # the HA manager's leader object (the lease)


@dataclass
class _Refresh(Coalesced):
    switchover_at: float | None = None  # monotonic time of the last switchover request
    failover_at: float | None = None  # monotonic time the lease moved without our asking


_refreshes: dict[tuple[str, str, str], _Refresh] = defaultdict(_Refresh)

# The server a body is now, or None when nothing may be done (paused, unsupported, deleting).
Read = Callable[[], Members]
ServerOf = Callable[[dict, dict | None], Server | None]


def refresh(kube: Kube, key: tuple[str, str, str], read: Read, server_of: ServerOf) -> str:
    """Status, then one rolling step. `key` is (kind, namespace, name). Returns what it did."""
    state = _refreshes[key]

    def once() -> str:
        action = _refresh_once(kube, key, read(), server_of, state)
        if key in _refreshes and (state.switchover_at is not None or state.failover_at is not None):
            # No pod event may follow a refused switchover or a tier wait: look again later.
            state.again_after(SWITCHOVER_RETRY_SECONDS, once)
        return action

    return state.run(once)


def _promotion_tier_step(kube: Kube, seen: Members, server: Server, members: list[Member], routed: routing.Routed,
                         state: _Refresh) -> str | None:  # fmt: skip
    """Right after a failover, the switchover that puts the writer on the best promotion tier
    (builders.tiers); None when there is nothing to do (the rolling step goes on)."""
    now = time.monotonic()
    asked = state.switchover_at is not None and now - state.switchover_at < REQUESTED_WITHIN_SECONDS
    if routed.changed and failed_over(routed.leader, routed.last_holder, asked):
        state.failover_at = now
    if state.failover_at is None or now - state.failover_at > TIER_WINDOW_SECONDS:
        state.failover_at = None
        return None
    step = after_failover(members, routed.leader, server.promotion_tiers, server.synchronous)
    if step.action == "none":
        state.failover_at = None
        return None
    if step.action == "wait":  # refresh() schedules the look again while failover_at is set
        return f"promotion tier: {step.reason}"
    if asked:
        return f"promotion tier: a request {now - state.switchover_at:.0f}s ago is under way"
    state.switchover_at = now
    if step.action == "restart":
        post_event(seen.body, "Normal", "PromotionTier", message=f"after the failover: {step.reason}")
        return ask_member(kube, server, seen.pods, step.target, server.engine.restart_member())
    writer = next(m for m in members if m.name == routed.leader)
    post_event(seen.body, "Normal", "PromotionTier", message=f"after the failover: {step.reason}; switching over")
    return switch_over(kube, seen.body, server, seen.pods, writer, step.target, seen.proxy_pods, seen.zones)


def ask_member(kube: Kube, server: Server, pods: list[dict], member: Member, request: AgentRequest) -> str:
    """Sends one request to a member's agent; what it answered, or why not."""
    pod = next((p for p in pods if p["metadata"]["name"] == member.name), {})
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return f"waiting for the address of {member.name}"
    password = agent_api_password(kube, server.owner.namespace, server.name)
    try:
        answer = agents.send(ip, server.engine.layout.agent_port, request, password, tls=agent_tls(kube, server, pod))
    except agents.AgentError as error:
        return f"{request.method} {request.path} on {member.name} failed: {error}"
    return f"{request.method} {request.path} on {member.name}: {answer}"


def _refresh_once(kube: Kube, key: tuple[str, str, str], seen: Members, server_of: ServerOf,
                  state: _Refresh) -> str:  # fmt: skip
    # The index may lag behind a status write; publish_status then re-reads on the conflict.
    if seen.body is None:
        _refreshes.pop(key, _Refresh()).cancel()
        routing.forget(key)
        return "nothing: the server is gone"
    namespace, name = key[1], key[2]
    try:  # a StatefulSet being re-created with larger claim templates is made once the old one is gone
        seen = replace(seen, stateful_set=claim_template.complete(kube, seen.stateful_set, namespace,
                                                                  names.stateful_set(name)))  # fmt: skip
    except kopf.TemporaryError as waiting:
        return str(waiting)
    server = server_of(seen.body, seen.stateful_set)
    if server is None:
        return "nothing: paused, unsupported or deleting"
    members = [member_from_pod(p, seen.zones, server.engine.role_label_values) for p in seen.pods]
    routed = routing.route(kube, key, server, members, seen.leader)  # first: clients wait on it
    if routed.changed:
        post_event(seen.body, "Normal", "WriterMoved",
                   message=f"the writer endpoint follows the leader lease: {routed.describe()}")  # fmt: skip
    conditions, allocated = [], None
    if seen.claims:
        status = seen.body.get("status") or {}
        wanted = storage.wanted_size(server.spec.storage.size, status)
        resized, allocated = storage_condition(wanted, seen.claims)
        # Said only of volumes that were asked to grow (every new server's have their size).
        grown = (status.get("storage") or {}).get("lastGrowTime")
        if resized and (to_bytes(wanted) > to_bytes(server.claim_size) or grown):
            conditions.append(resized)
    publish_server_status(kube, seen.body, server, seen.pods, seen.zones, conditions, allocated,
                          proxy=ProxySeen(seen.proxy))  # fmt: skip
    if server.promotion_tiers is not None:
        tiered = _promotion_tier_step(kube, seen, server, members, routed, state)
        if tiered:
            return tiered
    update_revision = ((seen.stateful_set or {}).get("status") or {}).get("updateRevision")
    target = next_pod_to_roll(members, update_revision, server.replicas)
    if target is None:
        state.switchover_at = None
        return "nothing to roll"
    step = handover(members, target, synchronous=server.synchronous)
    if step.action == "wait":
        return step.reason
    if step.action == "replace":
        return roll(kube, seen.body, target, seen.pods)
    since = time.monotonic() - (state.switchover_at or -SWITCHOVER_RETRY_SECONDS)
    if since < SWITCHOVER_RETRY_SECONDS:
        return f"switchover requested {since:.0f}s ago: waiting for the roles to change"
    state.switchover_at = time.monotonic()
    return switch_over(kube, seen.body, server, seen.pods, target, step.standby, seen.proxy_pods, seen.zones)


def agent_api_password(kube: Kube, namespace: str, server: str) -> str | None:
    """The server's HA API password (None for a server made before it existed: no auth)."""
    secret = kube.get("Secret", namespace, names.agent_credentials(server))
    return secret_text(secret, environment.API_PASSWORD.key)


def agent_tls(kube: Kube, server: Server, pod: dict) -> agents.AgentTls | None:
    """How to verify the member's HA API, when its agent says it serves TLS: the server's CA
    (from the served certificate's Secret) and the pod's name under the headless Service."""
    if not AgentReport.from_pod(pod).api_tls:
        return None
    namespace = server.owner.namespace
    ca = secret_text(kube.get("Secret", namespace, names.tls_secret(server.name)), "ca.crt")
    if not ca:
        raise agents.AgentError(f"{pod['metadata']['name']} serves its API over TLS and Secret "
                                f"{names.tls_secret(server.name)} has no ca.crt to verify it")  # fmt: skip
    return agents.AgentTls(ca, f"{pod['metadata']['name']}.{names.headless_service(server.name)}.{namespace}.svc")


def switch_over(kube: Kube, body: dict, server: Server, pods: list[dict], primary: Member, standby: Member,
                proxy_pods: list[dict] = (), zones: dict[str, str] | None = None) -> str:  # fmt: skip
    """Asks the primary's agent for a planned switchover, holding the proxy's clients meanwhile
    (operations.proxy); the old primary, now a standby, is replaced on a later pass. A refusal
    is reported, and tried again after SWITCHOVER_RETRY_SECONDS."""
    pod = next((p for p in pods if p["metadata"]["name"] == primary.name), {})
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return f"waiting for the address of primary {primary.name} to switch over"
    password = agent_api_password(kube, server.owner.namespace, server.name)
    request = server.engine.switchover(primary.name, standby.name)

    def switch() -> str:
        return agents.send(ip, server.engine.layout.agent_port, request, password, tls=agent_tls(kube, server, pod))

    consoles = proxy_consoles(kube, server, proxy_pods)
    try:
        if consoles:
            held = proxy.held_switchover(
                consoles, switch, lambda: writer_moved(kube, body, server, standby, pods, zones or {})
            )
            answer = held.answer
            post_event(body, "Normal" if held.clean else "Warning",
                       "ProxyHeld" if held.clean else "ProxyHeldWithProblems", message=held.summary())  # fmt: skip
        else:
            answer = switch()
    except agents.AgentError as error:
        post_event(body, "Warning", "SwitchoverFailed",
                   message=f"switchover from {primary.name} to {standby.name} failed: {error}")  # fmt: skip
        return f"switchover failed: {error}"
    post_event(body, "Normal", "Switchover",
               message=f"primary moved from {primary.name} to {standby.name} before replacing {primary.name}: "
               f"{answer}")  # fmt: skip
    return f"switched over from {primary.name} to {standby.name}"


def proxy_consoles(kube: Kube, server: Server, proxy_pods: list[dict]) -> list[proxy.Console]:
    """The admin consoles of the proxy's running pods (none: no proxy, or no password yet)."""
    running = [p for p in proxy_pods if (p.get("status") or {}).get("podIP") and not p["metadata"].get(
        "deletionTimestamp")]  # fmt: skip
    if not running or server.engine.proxy is None:
        return []
    secret = kube.get("Secret", server.owner.namespace, names.agent_credentials(server.name))
    password = secret_text(secret, environment.PROXY_CONSOLE_PASSWORD.key)
    if not password:
        return []
    port = server.engine.proxy.layout.port
    return [proxy.Console(p["metadata"]["name"], p["status"]["podIP"], port, password) for p in running]


def writer_moved(kube: Kube, body: dict, server: Server, new: Member, pods: list[dict], zones: dict[str, str]) -> bool:
    """Whether `new` holds the leader lease; when it does, the writer endpoint is routed to it
    at once (this runs inside the refresh that would otherwise do it). The lease is asked of
    the API server, not an index: the event that moves it is handled only after this one."""
    leader_object = kube.get(server.engine.leader_kind, server.owner.namespace, names.leader_object(server.name))
    if routing.leader_of(leader_object) != new.name:
        return False
    members = [member_from_pod(p, zones, server.engine.role_label_values) for p in pods]
    key = (body["kind"], server.owner.namespace, server.name)
    routing.route(kube, key, server, members, leader_object)
    return True


def roll(kube: Kube, body: dict, member: Member, pods: list[dict]) -> str:
    """Deletes the pod (the StatefulSet makes it again from the new template); the uid
    precondition keeps a pod re-created meanwhile under the same name."""
    uid = next((p["metadata"].get("uid") for p in pods if p["metadata"]["name"] == member.name), None)
    post_event(body, "Normal", "RollingUpdate",
               message=f"replacing {member.role} pod {member.name} with the new template")  # fmt: skip
    kube.delete("Pod", body["metadata"]["namespace"], member.name, uid=uid)
    return f"rolled {member.role} {member.name}"
