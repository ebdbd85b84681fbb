"""RDB snapshots of a Redis cluster in the object store: daily in the window with retention,
DBSnapshots (source.cacheCluster) on request, and the restore a new cluster's member 0 does
before its Redis first starts.

Layout, under the repository's path: `snapshots/<id>/rdb.sealed` (the RDB, compressed and
encrypted: kuberds.agent.sealed) and `snapshots/<id>/manifest.json` (what it is, written last:
a snapshot without a manifest is an upload that did not finish, and is not listed).

Who takes them: one member, chosen from what every agent sees (`taker`): the synced replica
with the lowest ordinal, so the primary never forks under its writes; the primary only when
it has no synced replica. `next_step` is the pure decision; `RedisSnapshots` does the I/O.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from kuberds.agent.decisions import SnapshotRequest
from kuberds.agent.kube import KubeError
from kuberds.agent.lease import LeaderLease
from kuberds.agent.objectstore import ObjectStore, ObjectStoreError
from kuberds.agent.pod import Pod
from kuberds.agent.redis.decide import MASTER, REPLICA, Member
from kuberds.agent.schedule import Window
from kuberds.agent.sealed import SealError, seal, unseal
from kuberds.agent.snapshots import Snapshots
from kuberds.contract import environment
from kuberds.contract import snapshots as snapshot_phases
from kuberds.contract.redis import RedisAgentConfig
from kuberds.contract.settings import BackupPlan, ObjectStoreTarget, Repository

log = logging.getLogger("kuberds.agent")

DAILY, MANUAL = "daily", "manual"
DATA_FILE, MANIFEST_FILE = "rdb.sealed", "manifest.json"
RDB = "dump.rdb"  # redis.conf's default dbfilename: BGSAVE writes it, and a starting Redis loads it
BGSAVE_TIMEOUT = 3600.0
LIST_SECONDS = 60.0  # the repository is listed again at most this often (and after each change)
LOOK_SECONDS = 10.0  # how often the member looks for a due or requested snapshot
BACKOFF_SECONDS = 60.0  # after a failed look
RESTORE_TRIES = 5
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class SnapshotStats:
    """What this member's snapshots did, for its metrics (kuberds_redis_snapshot_*)."""

    taken: int = 0
    failed: int = 0
    last_time: float | None = None  # unix time the last one finished
    last_seconds: float | None = None  # BGSAVE + seal + upload
    last_bytes: int | None = None  # stored (sealed)


@dataclass(frozen=True)
class Manifest:
    id: str
    kind: str  # daily or manual
    taken_at: str  # RFC 3339 UTC: when BGSAVE finished (the data is as of then)
    member: str
    engine_version: str
    plain_bytes: int
    sealed_bytes: int
    sha256: str  # of the RDB
    encrypted: bool
    snapshot_uid: str | None = None  # the DBSnapshot's uid (manual)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        fields = json.loads(data)
        return cls(**{k: fields.get(k) for k in cls.__dataclass_fields__})

    @property
    def time(self) -> datetime:
        return datetime.strptime(self.taken_at, TIME_FORMAT).replace(tzinfo=UTC)


def snapshots_prefix(repository: Repository) -> str:
    return f"{repository.path.strip('/')}/snapshots/"


def object_key(repository: Repository, snapshot_id: str, file: str) -> str:
    return f"{snapshots_prefix(repository)}{snapshot_id}/{file}"


def new_id(now: datetime, kind: str) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{kind}"


# ---------------------------------------------------------------- decisions (pure)


@dataclass(frozen=True)
class Step:
    action: str | None  # manual, remove, daily, expire; None: nothing to do
    reason: str
    argument: str | None = None  # the DBSnapshot (manual, remove) or the ids to expire (comma separated)


def taker(members: list[Member]) -> str | None:
    """The member that takes snapshots: the synced replica with the lowest ordinal, else the
    primary; None when no member that answers can (every agent computes the same name)."""
    synced = sorted((m for m in members if m.role == REPLICA and m.has_data), key=lambda m: m.ordinal)
    if synced:
        return synced[0].name
    return next((m.name for m in members if m.role == MASTER), None)


def expired(manifests: list[Manifest], now: datetime, retention_days: int) -> list[str]:
    """Daily snapshots older than the retention; DBSnapshots are never expired."""
    oldest = now - timedelta(days=retention_days)
    return [m.id for m in manifests if m.kind == DAILY and m.time < oldest]


def next_step(now: datetime, plan: BackupPlan, manifests: list[Manifest], requests: list[SnapshotRequest],
              taker_name: str | None, me: str) -> Step:  # fmt: skip
    if taker_name != me:
        return Step(None, f"snapshots are taken on {taker_name}" if taker_name else "no member can take snapshots")
    for request in requests:
        if request.deleting and request.backup_label and not request.retain and request.removal_approved:
            return Step("remove", f"DBSnapshot {request.name} deleted: removing {request.backup_label}", request.name)
    for request in requests:
        if not request.deleting and request.backup_label is None:
            return Step("manual", f"taking DBSnapshot {request.name}", request.name)
    if plan.retention_days <= 0:
        return Step(None, "daily snapshots are off (retention 0 days)")
    window = Window.parse(plan.window)
    opened = window.opened_before(now)
    if window.contains(now) and not any(m.kind == DAILY and m.time >= opened for m in manifests):
        return Step("daily", f"the snapshot window {plan.window} is open and today's snapshot is not taken")
    stale = expired(manifests, now, plan.retention_days)
    if stale:
        return Step("expire", f"{len(stale)} daily snapshot(s) older than {plan.retention_days} days", ",".join(stale))
    return Step(None, "daily snapshot taken; nothing to do")


# ---------------------------------------------------------------- I/O


def bgsave(client: redis.Redis, timeout: float = BGSAVE_TIMEOUT) -> None:
    """An RDB of the member's data in its directory (a fork: the member keeps serving)."""
    started = int(time.time())
    deadline = time.monotonic() + timeout
    try:
        client.bgsave()
    except redis.ResponseError as error:  # one already running: its file is as good
        if "in progress" not in str(error):
            raise
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)) and int(info.get("rdb_last_save_time", 0)) >= started:
            if info.get("rdb_last_bgsave_status") != "ok":
                raise RuntimeError("BGSAVE failed (rdb_last_bgsave_status is not ok)")
            return
        time.sleep(0.1)
    raise TimeoutError(f"BGSAVE did not finish in {timeout:.0f} s")


def discard_rdb(data_dir: Path) -> None:
    """No RDB may stay in the data directory: Redis loads it when it restarts, and a member
    that restarts must come back empty (kuberds.agent.redis.decide)."""
    for leftover in (data_dir / RDB, data_dir / DATA_FILE, data_dir / f"{RDB}.partial"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def restore(store: ObjectStore, repository: Repository, snapshot_id: str, passphrase: str | None,
            data_dir: Path) -> Manifest:  # fmt: skip
    """Puts the snapshot's RDB where Redis loads it from when it starts."""
    manifest = Manifest.from_json(store.get_bytes(object_key(repository, snapshot_id, MANIFEST_FILE)))
    sealed, partial = data_dir / DATA_FILE, data_dir / f"{RDB}.partial"
    started = time.monotonic()
    store.get_to_file(object_key(repository, snapshot_id, DATA_FILE), sealed)
    with sealed.open("rb") as source, partial.open("wb") as target:
        opened = unseal(source, target, passphrase)
    sealed.unlink()
    if opened.sha256 != manifest.sha256:
        partial.unlink()
        raise SealError(f"snapshot {snapshot_id}: the RDB does not match its manifest's checksum")
    partial.rename(data_dir / RDB)
    elapsed = max(time.monotonic() - started, 1e-6)
    log.info("restored snapshot %s (%d bytes of RDB) in %.1f s, %.1f MiB/s", snapshot_id, opened.plain_bytes,
             elapsed, opened.plain_bytes / elapsed / 2**20)  # fmt: skip
    return manifest


class RedisSnapshots:
    """The snapshots of one cluster as this member's agent serves them."""

    def __init__(self, store: ObjectStore, plan: BackupPlan, passphrase: str | None, data_dir: Path,
                 requests: Callable[[Callable[[str], str | None]], list[SnapshotRequest]],
                 set_status: Callable[[str, dict], None], member: str, engine_version: str):  # fmt: skip
        self.store, self.plan, self.passphrase, self.data_dir = store, plan, passphrase, data_dir
        self.requests, self.set_status = requests, set_status
        self.member, self.engine_version = member, engine_version
        self.listed: tuple[float, list[Manifest]] = (-LIST_SECONDS, [])
        self.last: Step | None = None
        self.stats = SnapshotStats()

    def loop(self, client: Callable[[], redis.Redis | None], who: Callable[[], str | None],
             stopping: Callable[[], bool]) -> None:  # fmt: skip
        """The snapshot thread: off the HA loop, since a snapshot takes as long as its upload."""
        while not stopping():
            time.sleep(LOOK_SECONDS)
            local = client()
            if local is None:  # this member's Redis has not answered yet
                continue
            try:
                self.step(local, who())
            except Exception as error:
                log.warning("snapshots: %s; looking again in %.0f s", error, BACKOFF_SECONDS)
                time.sleep(BACKOFF_SECONDS)

    def manifests(self, force: bool = False) -> list[Manifest]:
        listed_at, manifests = self.listed
        if force or time.monotonic() - listed_at >= LIST_SECONDS:
            keys = [k for k, _ in self.store.list(snapshots_prefix(self.plan.repository)) if k.endswith(MANIFEST_FILE)]
            manifests = sorted((Manifest.from_json(self.store.get_bytes(k)) for k in keys), key=lambda m: m.id)
            self.listed = (time.monotonic(), manifests)
        return manifests

    def label_for(self, uid: str) -> str | None:
        return next((m.id for m in self.manifests() if m.snapshot_uid == uid), None)

    def step(self, client: redis.Redis, taker_name: str | None, now: datetime | None = None) -> Step:
        """One look: what is due, done before returning (the caller runs this off the HA loop)."""
        now = now or datetime.now(UTC)
        taking = taker_name == self.member  # only the taker reads the bucket and the DBSnapshots
        requests = self.requests(self.label_for) if taking else []
        step = next_step(now, self.plan, self.manifests() if taking else [], requests, taker_name, self.member)
        if self.last is None or step.reason != self.last.reason:
            log.info("snapshots: %s", step.reason)
        self.last = step
        if step.action == "manual":
            self._manual(client, step.argument, next(r for r in requests if r.name == step.argument), now)
        elif step.action == "daily":
            self.take(client, new_id(now, DAILY), DAILY)
        elif step.action == "remove":
            request = next(r for r in requests if r.name == step.argument)
            self.remove(request.backup_label)
            self.set_status(request.name, {"phase": snapshot_phases.DELETED, "backupID": None})
        elif step.action == "expire":
            for snapshot_id in step.argument.split(","):
                self.remove(snapshot_id)
        return step

    def _manual(self, client: redis.Redis, name: str, request: SnapshotRequest, now: datetime) -> None:
        self.set_status(name, {"phase": snapshot_phases.CREATING})
        try:
            manifest = self.take(client, new_id(now, MANUAL), MANUAL, snapshot_uid=request.uid)
        except (ObjectStoreError, SealError, redis.RedisError, OSError, RuntimeError) as error:
            log.warning("DBSnapshot %s failed: %s", name, error)
            self.stats.failed += 1
            self.set_status(name, {"phase": snapshot_phases.FAILED})
            return
        self.set_status(name, {
            "phase": snapshot_phases.AVAILABLE, "backupID": manifest.id, "snapshotTime": manifest.taken_at,
            "sizeBytes": manifest.sealed_bytes, "engine": "redis", "engineVersion": manifest.engine_version,
        })  # fmt: skip

    def take(self, client: redis.Redis, snapshot_id: str, kind: str, snapshot_uid: str | None = None) -> Manifest:
        started = time.monotonic()
        rdb, sealed = self.data_dir / RDB, self.data_dir / DATA_FILE
        try:
            bgsave(client)
            taken_at = datetime.now(UTC).strftime(TIME_FORMAT)
            with rdb.open("rb") as source, sealed.open("wb") as target:
                info = seal(source, target, self.passphrase)
            rdb.unlink()
            self.store.put_file(object_key(self.plan.repository, snapshot_id, DATA_FILE), sealed)
        finally:
            discard_rdb(self.data_dir)
        manifest = Manifest(snapshot_id, kind, taken_at, self.member, self.engine_version, info.plain_bytes,
                            info.sealed_bytes, info.sha256, self.passphrase is not None, snapshot_uid)  # fmt: skip
        self.store.put_bytes(object_key(self.plan.repository, snapshot_id, MANIFEST_FILE), manifest.to_json())
        seconds = time.monotonic() - started
        self.stats.taken += 1
        self.stats.last_time, self.stats.last_seconds, self.stats.last_bytes = time.time(), seconds, info.sealed_bytes
        log.info("snapshot %s: %d bytes of RDB, %d stored, in %.1f s (%.1f MiB/s)", snapshot_id, info.plain_bytes,
                 info.sealed_bytes, seconds, info.plain_bytes / max(seconds, 1e-6) / 2**20)  # fmt: skip
        self.manifests(force=True)
        return manifest

    def remove(self, snapshot_id: str) -> None:
        # The manifest first: a snapshot half removed is no longer listed, and never restored from.
        self.store.delete(object_key(self.plan.repository, snapshot_id, MANIFEST_FILE))
        self.store.delete(object_key(self.plan.repository, snapshot_id, DATA_FILE))
        log.info("snapshot %s removed", snapshot_id)
        self.manifests(force=True)


# ---------------------------------------------------------------- the agent's side


def _store(target: ObjectStoreTarget, env: dict[str, str], keys: environment.StoreVars) -> ObjectStore:
    return ObjectStore(target, env.get(keys.access_key.env, ""), env.get(keys.secret_key.env, ""))


def serve_snapshots(config: RedisAgentConfig, kube, pod: Pod, env: dict[str, str]) -> RedisSnapshots | None:
    """The member's snapshot service, or None when the cluster has no object store."""
    plan = config.snapshots
    if plan is None:
        return None
    requests = Snapshots(kube, pod.namespace, config.cluster, "CacheCluster")
    passphrase = env.get(environment.BACKUP_STORE.cipher_pass.env) if plan.repository.encrypted else None
    return RedisSnapshots(_store(plan.repository.store, env, environment.BACKUP_STORE), plan, passphrase,
                          pod.data_dir, requests.requests, requests.set_status, pod.name,
                          config.engine_version)  # fmt: skip


def restore_if_first(config: RedisAgentConfig, lease: LeaderLease, env: dict[str, str], data_dir: Path) -> None:
    """Member 0 of a cluster made from a snapshot loads it before its Redis first starts. First
    means no leader Lease yet: a later restart comes back empty, as every member's does."""
    plan = config.restore
    if plan is None:
        return
    for attempt in range(RESTORE_TRIES):
        try:
            if lease.observe().exists:
                return
            break
        except KubeError as error:
            log.warning("reading the lease before the restore: %s", error)
            time.sleep(2**attempt)
    else:
        raise RuntimeError("the API server does not answer: cannot tell whether this is the first start")
    passphrase = env.get(environment.RESTORE_STORE.cipher_pass.env) if plan.repository.encrypted else None
    log.info("first start of a restored cluster: loading snapshot %s", plan.snapshot_set)
    restore(_store(plan.repository.store, env, environment.RESTORE_STORE), plan.repository, plan.snapshot_set,
            passphrase, data_dir)  # fmt: skip
