"""The status screen of one server: what it is, where to reach it, its members, its backups,
its conditions and what happened lately. Pure: the object, its pods, events and snapshots in
(as the API returns them), plain text out."""

from __future__ import annotations

from datetime import UTC, datetime

from kuberds.contract.report import AgentReport
from kuberds.plugin.kinds import (
    CACHECLUSTER,
    DBCLUSTER,
    DBINSTANCE,
    READREPLICA,
    ROLE_LABEL,
    SWITCHOVER_ANNOTATION,
    engine_of,
    is_primary_role,
    primary_of,
    spec,
    status,
)
from kuberds.plugin.text import age, fields, parse_time, seconds, table, when, yes_no

RECENT_EVENTS = 15


def render(obj: dict, pods: list[dict], events: list[dict], snapshots: list[dict] | None = None,
           now: datetime | None = None, recent: int = RECENT_EVENTS) -> str:  # fmt: skip
    now = now or datetime.now(UTC)
    sections = [
        header(obj, now),
        ["Members", *members(obj, pods, now)],
        ["Backups", *backups(obj, pods, snapshots, now)],
        ["Conditions", *conditions(obj, now)],
        [f"Events (the last {recent}, oldest first)", *recent_events(events, now, recent)],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


# ---------------------------------------------------------------- what and where


def header(obj: dict, now: datetime) -> list[str]:
    meta, kind = obj["metadata"], obj.get("kind", "")
    s, st = spec(obj), status(obj)
    engine = engine_of(obj) or "?"
    version = st.get("engineVersion") or s.get("engineVersion") or "(newest offered)"
    phase = st.get("phase") or "(no status yet)"
    generation, observed = meta.get("generation"), st.get("observedGeneration")
    if generation and observed is not None and observed < generation:
        phase += f" (status is for generation {observed}; the spec is at {generation})"
    if s.get("automationPaused"):
        phase += " — automation paused"
    pairs: list[tuple[str, str | None]] = [
        ("Engine", f"{engine} {version}"),
        *_kind_lines(obj),
        ("Phase", phase),
        ("Endpoint", st.get("endpoint")),
        ("Reader endpoint", st.get("readerEndpoint")),
        ("Proxy endpoint", st.get("proxyEndpoint")),
        ("Proxy reader endpoint", st.get("proxyReaderEndpoint")),
        *[(f"Endpoint {e.get('name')}", _routes(e)) for e in st.get("customEndpoints") or []],
        ("TLS port", str(st["tlsPort"]) if st.get("tlsPort") else None),
        ("Primary", primary_of(obj) or ("none" if kind != CACHECLUSTER.kind or engine == "redis" else None)),
        ("Storage", _storage(obj)),
        ("Master user secret", st.get("masterUserSecretName")),
        ("AUTH secret", st.get("authSecretName")),
        ("Certificate secret", st.get("certificateSecretName")),
        ("Switchover", _switchover(obj)),
        ("Created", when(meta.get("creationTimestamp"), now)),
    ]
    return [f"{kind} {meta['name']} (namespace {meta.get('namespace', '?')})", *fields(pairs)]


def _routes(endpoint: dict) -> str:
    return f"{endpoint.get('endpoint')} → {', '.join(endpoint.get('members') or []) or 'no member'}"


def _kind_lines(obj: dict) -> list[tuple[str, str | None]]:
    kind, s, st = obj.get("kind"), spec(obj), status(obj)
    if kind == DBINSTANCE.kind:
        return [("Class", s.get("instanceClass")), ("Multi-AZ", yes_no(s.get("multiAZ")))]
    if kind == DBCLUSTER.kind:
        readers = f"{s.get('readers', 1)} wanted, {st.get('readyReaders', 0)} ready and within lag"
        return [("Class", s.get("instanceClass")), ("Readers", readers)]
    if kind == READREPLICA.kind:
        source = st.get("source") or {}
        wanted = s.get("source") or {}
        name = source.get("name") or wanted.get("dbInstance") or wanted.get("dbCluster") or "external"
        followed = f"{source.get('kind') or ('DBInstance' if wanted.get('dbInstance') else 'DBCluster')} {name}"
        promoted = (f"yes, at {st['promotedAt']}" if st.get("promotedAt") else "yes (promoting)") \
            if s.get("promote") else "no"  # fmt: skip
        lag = st.get("replicaLagSeconds")
        return [("Class", s.get("instanceClass")), ("Source", followed), ("Promoted", promoted),
                ("Replica lag", seconds(lag) if lag is not None and not s.get("promote") else None)]  # fmt: skip
    if kind == CACHECLUSTER.kind:
        size = (f"{s.get('numNodes', 1)} node(s)" if s.get("engine") == "memcached"
                else f"a primary and {s.get('replicas', 0)} replica(s), automatic failover "
                     f"{'on' if s.get('automaticFailover') else 'off'}")  # fmt: skip
        return [("Node type", s.get("nodeType")), ("Size", size), ("Multi-AZ", yes_no(s.get("multiAZ")))]
    return []


def _storage(obj: dict) -> str | None:
    wanted = (spec(obj).get("storage") or {}).get("size")
    seen = status(obj).get("storage") or {}
    if not wanted and not seen:
        return None
    parts = [f"{seen.get('requested') or wanted} requested"]
    if seen.get("allocated"):
        parts.append(f"{seen['allocated']} allocated")
    if seen.get("used"):
        free = f" ({seen['freePercent']}% free)" if seen.get("freePercent") is not None else ""
        parts.append(f"{seen['used']} used{free}")
    if seen.get("maxSize"):
        parts.append(f"autoscaling up to {seen['maxSize']}")
    return ", ".join(parts)


def _switchover(obj: dict) -> str | None:
    asked = (obj["metadata"].get("annotations") or {}).get(SWITCHOVER_ANNOTATION)
    return f"requested (to {asked}); the operator has not carried it out yet" if asked else None


# ---------------------------------------------------------------- members


def members(obj: dict, pods: list[dict], now: datetime) -> list[str]:
    by_name = {p["metadata"]["name"]: p for p in pods}
    listed = list(status(obj).get("members") or [])
    named = {m.get("name") for m in listed}
    # Pods status does not list yet (just made), with the role their label says.
    listed += [{"name": n, "role": (p["metadata"].get("labels") or {}).get(ROLE_LABEL, "unknown"), "ready": _ready(p)}
               for n, p in by_name.items() if n not in named]  # fmt: skip
    if not listed:
        return ["  no members yet"]
    replica_lag = status(obj).get("replicaLagSeconds") if obj.get("kind") == READREPLICA.kind else None
    rows = []
    for member in sorted(listed, key=lambda m: m.get("name", "")):
        pod = by_name.get(member.get("name"))
        lag = member.get("lagSeconds")
        if lag is None and replica_lag is not None and is_primary_role(member.get("role")):
            lag = replica_lag  # a read replica's leader: behind its source
        sync = member.get("synchronous")
        rows.append([
            member.get("name", "?"), member.get("role", "unknown"), member.get("zone") or "-",
            yes_no(member.get("ready")), seconds(lag) if lag is not None else "-",
            "-" if sync is None else yes_no(sync),
            "-" if member.get("promotionTier") is None else str(member["promotionTier"]),
            _pod_state(pod), (pod or {}).get("spec", {}).get("nodeName") or "-",
            str(_restarts(pod)) if pod else "-", age(pod["metadata"].get("creationTimestamp"), now) if pod else "-",
        ])  # fmt: skip
    headers = ["POD", "ROLE", "ZONE", "READY", "LAG", "SYNC", "TIER", "POD STATUS", "NODE", "RESTARTS", "AGE"]
    keep = [i for i, h in enumerate(headers) if h not in ("SYNC", "TIER") or any(r[i] != "-" for r in rows)]
    return table([headers[i] for i in keep], [[r[i] for i in keep] for r in rows])


def _ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _restarts(pod: dict | None) -> int:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _pod_state(pod: dict | None) -> str:
    """Running, Pending, or what keeps a container from running (CrashLoopBackOff, …)."""
    if pod is None:
        return "no pod"
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    pod_status = pod.get("status") or {}
    for container in pod_status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"]
    return pod_status.get("phase") or "Unknown"


# ---------------------------------------------------------------- backups


def backups(obj: dict, pods: list[dict], snapshots: list[dict] | None, now: datetime) -> list[str]:
    kind, s, st = obj.get("kind"), spec(obj), status(obj)
    engine = engine_of(obj)
    if engine == "memcached":
        return ["  none: Memcached keeps no data to back up"]
    condition = _condition(obj, "Snapshots" if kind == CACHECLUSTER.kind else "BackupHealthy")
    primary = next((p for p in pods if p["metadata"]["name"] == primary_of(obj)), None)
    report = AgentReport.from_pod(primary)
    pairs: list[tuple[str, str | None]] = []
    if kind != CACHECLUSTER.kind:  # a cache's backups are its snapshots: the condition says where and when
        if kind == READREPLICA.kind and not s.get("promote"):
            pairs.append(("Automated backups", "the source's (a replica that follows its source keeps none)"))
        else:
            backup = s.get("backup") or {}
            days, window = backup.get("retentionDays", 7), backup.get("window", "03:00-03:30")
            kept = f"kept {days} days, daily in {window} UTC" if days else "off (retention 0)"
            pairs.append(("Automated backups", kept))
        earliest = st.get("earliestRestorableTime") or report.earliest_restorable_time
        latest = st.get("latestRestorableTime") or report.latest_restorable_time
        pairs += [
            ("Last backup", when(st.get("lastBackupTime") or report.last_backup_time, now)),
            ("Earliest restorable time", when(earliest, now)),
            ("Latest restorable time", when(latest, now)),
        ]
    if condition:
        pairs.append((condition["type"], _condition_line(condition)))
    if s.get("restore"):
        pairs.append(("Restored from", _restore_source(s["restore"])))
    if st.get("finalSnapshot"):
        pairs.append(("Final snapshot", st["finalSnapshot"]))
    lines = fields(pairs)
    if snapshots:
        newest = sorted(snapshots, key=lambda x: x["metadata"].get("creationTimestamp") or "")[-5:]
        lines += ["  DBSnapshots (the newest 5):", *table(
            ["NAME", "PHASE", "SNAPSHOT TIME", "KIND", "AGE"],
            [[x["metadata"]["name"], status(x).get("phase") or "-", status(x).get("snapshotTime") or "-",
              status(x).get("kind") or "-", age(x["metadata"].get("creationTimestamp"), now)] for x in newest],
            indent="    ")]  # fmt: skip
    return lines or ["  nothing reported yet"]


def _restore_source(restore: dict) -> str:
    if restore.get("fromSnapshot"):
        return f"DBSnapshot {restore['fromSnapshot']}"
    point = restore.get("pointInTime") or {}
    return f"{point.get('source')} at {'its latest restorable time' if point.get('latest') else point.get('time')}"


def _condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in status(obj).get("conditions") or [] if c.get("type") == type_), None)


def _condition_line(condition: dict) -> str:
    text = f"{condition.get('status')} {condition.get('reason') or ''}".rstrip()
    return f"{text}: {condition['message']}" if condition.get("message") else text


# ---------------------------------------------------------------- conditions and events


def conditions(obj: dict, now: datetime) -> list[str]:
    listed = status(obj).get("conditions") or []
    if not listed:
        return ["  none yet"]
    generation = obj["metadata"].get("generation")
    rows = []
    for c in listed:
        stale = generation and c.get("observedGeneration") is not None and c["observedGeneration"] < generation
        message = " ".join(filter(None, (c.get("message"), "(for an older generation)" if stale else "")))
        rows.append([c.get("type", "?"), c.get("status", "?"), c.get("reason") or "-",
                     age(c.get("lastTransitionTime"), now), message])  # fmt: skip
    return table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows)


def event_time(event: dict) -> str:
    series = event.get("series") or {}
    return (series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
            or event.get("firstTimestamp") or (event.get("metadata") or {}).get("creationTimestamp") or "")  # fmt: skip


def recent_events(events: list[dict], now: datetime, recent: int = RECENT_EVENTS) -> list[str]:
    if not events:
        return ["  none (the API server keeps events for an hour by default)"]
    ordered = sorted(events, key=event_moment)[-recent:]
    rows = []
    for e in ordered:
        involved = e.get("involvedObject") or e.get("regarding") or {}
        count = (e.get("series") or {}).get("count") or e.get("count") or 1
        message = (e.get("message") or e.get("note") or "").strip() + (f" (x{count})" if count > 1 else "")
        what = f"{involved.get('kind', '?')}/{involved.get('name')}"
        rows.append([age(event_time(e), now), e.get("type") or "-", what, e.get("reason") or "-", message])
    return table(["AGE", "TYPE", "OBJECT", "REASON", "MESSAGE"], rows)


def event_moment(event: dict) -> datetime:
    return parse_time(event_time(event)) or datetime.min.replace(tzinfo=UTC)
