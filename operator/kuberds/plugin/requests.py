"""The commands that ask something of a server: switchover (an annotation the operator carries
out), promote, pause and resume (spec fields), snapshot and restore (new objects)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

import yaml

from kuberds.plugin import restore as build
from kuberds.plugin import status as screen
from kuberds.plugin.client import Client
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import (
    ANY_MEMBER,
    DBSNAPSHOT,
    READREPLICA,
    SERVER_KINDS,
    SWITCHOVER_ANNOTATION,
    KindInfo,
    members_of,
    name_of,
    pod_selector,
    primary_of,
    spec,
    status,
)

POLL_SECONDS = 2.0


def wait_until(probe: Callable[[], object], timeout: float, what: str, interval: float = POLL_SECONDS):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise PluginError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def asked_moment(patched: dict | None) -> datetime:
    """When the API server recorded the request (its clock, as the Events' are): the newest
    managedFields time of the patched object; this machine's clock when there is none."""
    times = [entry.get("time") for entry in ((patched or {}).get("metadata") or {}).get("managedFields") or []]
    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times if t]
    return max(moments) if moments else datetime.now(UTC)


def events_since(client: Client, info: KindInfo, name: str, since: datetime) -> list[dict]:
    return [e for e in client.events(info.kind, name) if screen.event_moment(e) >= since]


# ------------------------------------------------------------ switchover


def switchover(client: Client, info: KindInfo, obj: dict, to: str | None, wait: bool, timeout: float,
               out: TextIO = sys.stdout, interval: float = POLL_SECONDS) -> int:  # fmt: skip
    name = name_of(obj)
    if info is READREPLICA:
        raise PluginError(f"ReadReplica {name} has one member: there is no one to switch over to")
    if info.kind == "CacheCluster":
        raise PluginError(f"CacheCluster {name}: kuberds offers switchovers of DBInstances and DBClusters only (a "
                          "Redis cache fails over by itself; Memcached nodes have no primary)")  # fmt: skip
    pending = (obj["metadata"].get("annotations") or {}).get(SWITCHOVER_ANNOTATION)
    if pending:
        raise PluginError(f"a switchover of {info.kind} {name} to {pending} is requested already; wait for it, or "
                          f"withdraw it: kubectl annotate {info.plural} {name} {SWITCHOVER_ANNOTATION}-")  # fmt: skip
    primary = primary_of(obj)
    pods = {p["metadata"]["name"] for p in client.pods(pod_selector(info, name))}
    names = {m.get("name") for m in members_of(obj)} | pods
    if len(names) < 2:
        raise PluginError(f"{info.kind} {name} has {len(names)} member(s): a switchover needs a second one")
    if to is not None:
        if to not in names:
            raise PluginError(f"{to} is not a member of {info.kind} {name} (its members: {', '.join(sorted(names))})")
        if to == primary:
            raise PluginError(f"{to} is the primary of {info.kind} {name} already")
    patched = client.patch(info, name, {"metadata": {"annotations": {SWITCHOVER_ANNOTATION: to or ANY_MEMBER}}})
    asked_at = asked_moment(patched) - timedelta(seconds=1)
    target = to or "the member the HA manager finds best"
    print(f"{info.kind} {name}: switchover from {primary or 'the primary'} to {target} requested "
          f"(annotation {SWITCHOVER_ANNOTATION}); the operator carries it out", file=out)  # fmt: skip
    if not wait:
        return 0

    def answered() -> dict | None:  # the operator removes the request once it said how it went
        now = client.get(info, name)
        return now if SWITCHOVER_ANNOTATION not in (now["metadata"].get("annotations") or {}) else None

    after = wait_until(answered, timeout, f"the operator to answer the switchover request of {info.kind} {name}",
                       interval)  # fmt: skip
    if primary_of(after) == primary:  # the operator took the request away: status may follow a moment later
        after = _briefly(lambda: client.get(info, name), lambda o: primary_of(o) != primary, interval)
    for line in screen.recent_events(events_since(client, info, name, asked_at), datetime.now(UTC)):
        print(line, file=out)
    if primary_of(after) and primary_of(after) != primary:
        print(f"{info.kind} {name}: the primary is {primary_of(after)} now (was {primary or 'none'})", file=out)
        return 0
    print(f"{info.kind} {name}: the request was taken away and the primary is still {primary or 'none'} (the "
          "events above say why)", file=out)  # fmt: skip
    return 1


def _briefly(read: Callable[[], dict], done: Callable[[dict], bool], interval: float, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    current = read()
    while not done(current) and time.monotonic() < deadline:
        time.sleep(interval)
        current = read()
    return current


# ------------------------------------------------------------ promote, pause, resume


def promote(client: Client, obj: dict, yes: bool, confirm: Callable[[str], bool], out: TextIO = sys.stdout) -> int:
    name = name_of(obj)
    if spec(obj).get("promote"):
        print(f"ReadReplica {name} is promoted already", file=out)
        return 0
    source = (status(obj).get("source") or {}).get("name") or "its source"
    question = (f"Promote ReadReplica {name} in namespace {client.namespace}? It stops replicating from {source} "
                "and becomes a standalone writable server; this cannot be undone. [y/N] ")  # fmt: skip
    if not yes and not confirm(question):
        print("not promoted", file=out)
        return 1
    client.patch(READREPLICA, name, {"spec": {"promote": True}})
    print(f"ReadReplica {name}: promote requested (spec.promote true); `kubectl kuberds status {name}` follows it",
          file=out)  # fmt: skip
    return 0


def set_paused(client: Client, info: KindInfo, obj: dict, paused: bool, out: TextIO = sys.stdout) -> int:
    name = name_of(obj)
    if bool(spec(obj).get("automationPaused")) == paused:
        print(f"{info.kind} {name}: automation is {'paused' if paused else 'running'} already", file=out)
        return 0
    client.patch(info, name, {"spec": {"automationPaused": paused}})
    said = ("automation paused: the operator changes nothing of it until `kubectl kuberds resume " + name + "`"
            if paused else "automation resumed: the operator applies the spec again")  # fmt: skip
    print(f"{info.kind} {name}: {said}", file=out)
    return 0


# ------------------------------------------------------------ snapshot and restore


def snapshot(client: Client, info: KindInfo, obj: dict, snapshot_name: str | None, retain: bool, wait: bool,
             timeout: float, out: TextIO = sys.stdout, interval: float = POLL_SECONDS) -> int:  # fmt: skip
    name = snapshot_name or build.default_snapshot_name(name_of(obj), datetime.now(UTC))
    client.create(DBSNAPSHOT, build.snapshot_body(info, obj, name, retain))
    print(f"DBSnapshot {name} of {info.kind} {name_of(obj)} created", file=out)
    if not wait:
        return 0

    def finished() -> dict | None:
        current = client.get(DBSNAPSHOT, name)
        return current if status(current).get("phase") in ("Available", "Failed") else None

    done = wait_until(finished, timeout, f"DBSnapshot {name} to be Available", interval)
    st = status(done)
    if st.get("phase") == "Failed":
        why = "; ".join(f"{c.get('reason')}: {c.get('message')}" for c in st.get("conditions") or []
                        if c.get("status") != "True") or "no condition says why"  # fmt: skip
        raise PluginError(f"DBSnapshot {name} Failed: {why}")
    size = f", {st['sizeBytes']} bytes" if st.get("sizeBytes") is not None else ""
    print(f"DBSnapshot {name} Available: consistent to {st.get('snapshotTime') or '?'}{size}", file=out)
    return 0


def restore(client: Client, info: KindInfo | None, source: dict | None, to: str | None, from_snapshot: str | None,
            new_name: str, dry_run: bool, wait: bool, timeout: float, out: TextIO = sys.stdout,
            err: TextIO = sys.stderr, interval: float = POLL_SECONDS) -> int:  # fmt: skip
    if from_snapshot:
        snap = client.get(DBSNAPSHOT, from_snapshot)
        template = source
        if template is None:
            kind = build.snapshot_kind(snap)
            template = client.find(kind, build.snapshot_source_name(snap))
        body = build.from_snapshot(snap, template, new_name)
        phase = status(snap).get("phase")
        if phase != "Available":
            print(f"note: DBSnapshot {from_snapshot} is {phase or 'not Available yet'}: {new_name} waits for it "
                  "(condition SnapshotNotAvailable)", file=err)  # fmt: skip
    else:
        if source is None or info is None:
            raise PluginError("restore --to needs the NAME of the server to restore from")
        time_ = build.restore_time(to, datetime.now(UTC))
        body = build.point_in_time(info, source, new_name, time_)
        if warning := build.window_warning(source, time_):
            print(f"note: {warning}", file=err)
    made = next(i for i in SERVER_KINDS if i.kind == body["kind"])
    if dry_run:
        print(yaml.safe_dump(body, sort_keys=False), file=out, end="")
        return 0
    client.create(made, body)
    print(f"{made.kind} {new_name} created, restoring from {_restore_said(body['spec']['restore'])}", file=out)
    if not wait:
        return 0
    done = wait_until(lambda: (o := client.get(made, new_name)) and status(o).get("phase") in ("Available", "Failed")
                      and o, timeout, f"{made.kind} {new_name} to be Available", interval)  # fmt: skip
    if status(done).get("phase") == "Failed":
        failing = [c for c in status(done).get("conditions") or [] if c.get("status") == "False"]
        why = "; ".join(f"{c.get('type')} {c.get('reason')}: {c.get('message')}" for c in failing)
        raise PluginError(f"{made.kind} {new_name} Failed: {why or 'see kubectl kuberds status ' + new_name}")
    print(f"{made.kind} {new_name} Available at {status(done).get('endpoint')}", file=out)
    return 0


def _restore_said(restore: dict) -> str:
    if restore.get("fromSnapshot"):
        return f"DBSnapshot {restore['fromSnapshot']}"
    point = restore["pointInTime"]
    return f"{point['source']} at {point.get('time') or 'its latest restorable time'}"
