"""What the MariaDB agent runs of its backups, where and when (the parts are backups.py,
binlogs.py and restore.py):

- binlog shipping and the automated full backups run on the primary only (a replica's binlogs
  are the primary's transactions under other file names), each on a worker thread of its own
  (a full backup takes as long as its upload; shipping must go on meanwhile), each with a
  connection of its own (Sql is not shared between threads);
- the restorable window is read from the store every WINDOW_SECONDS, for the operator's status;
- DBSnapshots are full backups of kind `manual` carrying the snapshot's uid, taken on the
  primary's backup thread (one backup at a time), looked for every SNAPSHOT_SECONDS; a deleted
  one's backup is removed once the operator approves (no restore reads it any more);
- a restored server's members restore before their mariadbd first starts, into an empty data
  directory only (a member that restarts later never restores over its data): member 0 of a
  new server from the source's backups, the others from the server's own first full.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from kuberds.agent.decisions import snapshot_steps
from kuberds.agent.lease import LeaderLease
from kuberds.agent.mariadb.backups import (
    DAILY,
    MANUAL,
    Manifest,
    MariaDBBackups,
    RestorableWindow,
    iso,
    list_fulls,
    remove_full,
)
from kuberds.agent.mariadb.binlogs import BinlogShipper
from kuberds.agent.mariadb.restore import Restored, restore
from kuberds.agent.mariadb.server import LocalServer
from kuberds.agent.objectstore import ObjectStore
from kuberds.agent.processes import Worker
from kuberds.agent.snapshots import Snapshots
from kuberds.contract import snapshots as phases
from kuberds.contract.environment import BACKUP_STORE, RESTORE_STORE, StoreVars
from kuberds.contract.settings import AgentConfig, Repository, RestorePlan

log = logging.getLogger("kuberds.agent")

SHIP_SECONDS = 10.0  # a look for closed binlogs (the shipper flushes one a minute while writes come)
STEP_SECONDS = 60.0  # a look at the schedule of full backups
SNAPSHOT_SECONDS = 10.0  # a look for DBSnapshots to take or remove
SEED_LOOK_SECONDS = 10.0  # a look for the first full backup a restored server's standby starts from
# In the work directory: this member restored another server's data, whose accounts (kuberds'
# and the master's) are the source's until it has made them again as a primary. A file, so
# that a restart between the restore and the first promotion does not forget it.
ACCOUNTS_PENDING = "accounts-pending"
WINDOW_SECONDS = 120.0


def store_for(repository: Repository, env: dict[str, str], store: StoreVars) -> tuple[ObjectStore, str | None]:
    """The repository's object store with the keys the pod's environment carries, and its
    passphrase (None: the repository is not encrypted)."""
    client = ObjectStore(repository.store, env.get(store.access_key.env, ""), env.get(store.secret_key.env, ""))
    return client, (env.get(store.cipher_pass.env) if repository.encrypted else None)


MESSAGE_CHARS = 1000  # a condition's message: the error's start says what failed


@dataclass
class BackupFigures:
    """What the agent's report says of backups (None: not known yet). A problem is a reason in
    the condition's CamelCase (a short word: the API server caps it) and a message."""

    shipping: tuple[str, str] | None = None  # the last shipping's problem; None: it worked
    taking: tuple[str, str] | None = None  # the last automated full's problem; None: it worked
    shipped: bool = False  # shipping has worked at least once
    latest_restorable_time: str | None = None
    earliest_restorable_time: str | None = None
    last_backup_time: str | None = None  # the newest automated full's end, from the store

    @property
    def healthy(self) -> bool | None:
        if self.shipping or self.taking:
            return False
        return True if self.shipped else None

    @property
    def reason(self) -> str | None:
        return (self.shipping or self.taking or (None, None))[0]

    @property
    def message(self) -> str | None:
        return (self.shipping or self.taking or (None, None))[1]


def problem(reason: str, what: str, error: BaseException) -> tuple[str, str]:
    return reason, f"{what}: {error}"[:MESSAGE_CHARS]


class Backing:
    def __init__(self, config: AgentConfig, server: LocalServer, env: dict[str, str], member: str, work_dir: Path,
                 snapshots: Snapshots | None = None):  # fmt: skip
        plan = config.backup
        store, passphrase = store_for(plan.repository, env, BACKUP_STORE)
        self.store, self.repository, self.snapshots = store, plan.repository, snapshots
        self.shipper = BinlogShipper(store, plan.repository, passphrase, server.own_connection(), server.data_dir,
                                     work_dir / "binlogs", member)  # fmt: skip
        self.backups = MariaDBBackups(store, plan, passphrase, server, work_dir / "full", member,
                                      config.engine_version)  # fmt: skip
        self.shipping, self.taking, self.reading = Worker(), Worker(), Worker()
        self.looked: dict[str, float] = {}
        self.figures = BackupFigures()

    def _due(self, what: str, every: float) -> bool:
        now = time.monotonic()
        if now - self.looked.get(what, -every) < every:
            return False
        self.looked[what] = now
        return True

    def on_loop(self, primary: bool) -> None:
        """Called every loop of the agent; starts what is due, on its own thread."""
        if primary and not self.shipping.busy and self._due("ship", SHIP_SECONDS):
            self.shipping.start("binlogs", self._ship)
        if primary and not self.taking.busy and self._due("serve", SNAPSHOT_SECONDS):
            self.taking.start("backups", self._serve)
        if not self.reading.busy and self._due("window", WINDOW_SECONDS):
            self.reading.start("window", self._window)

    def _ship(self) -> None:
        try:
            self.shipper.ship_once()
        except Exception as error:
            self.figures.shipping = problem("ArchiveFailing", "shipping binlogs", error)
            raise
        self.figures.shipping, self.figures.shipped = None, True

    def _serve(self) -> None:
        """DBSnapshots first (a user waits on them), then the schedule of automated fulls; a
        snapshot that fails (a grant not there yet, the object gone) holds neither back."""
        manifests = list_fulls(self.store, self.repository)
        self._note_last_full(manifests)
        if self.snapshots is not None:
            try:
                self._serve_snapshots(manifests)
            except Exception:
                log.exception("serving DBSnapshots failed; trying again in %.0f s", SNAPSHOT_SECONDS)
        if self._due("step", STEP_SECONDS):
            try:
                self.backups.step()
            except Exception as error:
                self.figures.taking = problem("BackupFailed", "the automated full backup", error)
                raise
            self.figures.taking = None
            self._note_last_full(list_fulls(self.store, self.repository))

    def _note_last_full(self, manifests: list[Manifest]) -> None:
        daily = [m.ended_at for m in manifests if m.kind == DAILY]
        self.figures.last_backup_time = max(daily) if daily else None

    def _serve_snapshots(self, manifests: list[Manifest]) -> None:
        by_uid = {m.snapshot_uid: m for m in manifests if m.snapshot_uid}
        requests = self.snapshots.requests(lambda uid: by_uid[uid].label if uid in by_uid else None,
                                           lambda name, label: self._available(name, manifests, label))  # fmt: skip
        for step in snapshot_steps(requests, backup_running=False):
            if step.kind == "remove-snapshot":
                self._remove(step.argument, requests, manifests)
            else:
                self._take(step.argument)

    def _take(self, name: str) -> None:
        snap = self.snapshots.get(name)
        if snap is None:
            return
        self.snapshots.set_status(name, {"phase": phases.CREATING})
        try:
            manifest = self.backups.take(MANUAL, snap["metadata"]["uid"])
        except Exception:
            log.exception("DBSnapshot %s failed", name)
            self.snapshots.set_status(name, {"phase": phases.FAILED})
            return
        self._available(name, [manifest], manifest.label)

    def _available(self, name: str, manifests: list[Manifest], label: str) -> None:
        manifest = next((m for m in manifests if m.label == label), None)
        if manifest is not None:
            self.snapshots.set_status(name, {
                "phase": phases.AVAILABLE, "backupID": manifest.label, "snapshotTime": manifest.consistent_at,
                "sizeBytes": manifest.sealed_bytes, "engine": "mariadb", "engineVersion": manifest.engine_version,
            })  # fmt: skip

    def _remove(self, name: str, requests: list, manifests: list[Manifest]) -> None:
        label = next((r.backup_label for r in requests if r.name == name), None)
        for manifest in (m for m in manifests if m.label == label):
            remove_full(self.store, self.repository, manifest)
            log.info("DBSnapshot %s deleted: its backup %s removed", name, label)
        self.snapshots.set_status(name, {"phase": phases.DELETED, "backupID": None})

    def _window(self) -> None:
        window: RestorableWindow | None = self.backups.window()
        if window is not None:
            self.figures.earliest_restorable_time = iso(window.earliest)
            self.figures.latest_restorable_time = iso(window.latest)


def restore_if_empty(config: AgentConfig, lease: LeaderLease | None, server: LocalServer, env: dict[str, str],
                     my_cnf: str, work_dir: Path, member_ordinal: int) -> Restored | None:  # fmt: skip
    """The members of a restored server start from a backup, into an empty data directory,
    before mariadbd first starts: member 0 of the new server from the restore plan (the
    source's backups); any other member, or a member 0 that comes back empty once the server
    ran, from the server's own newest full backup, which its primary takes as soon as it opens
    writes. (The primary's binlogs start where it restored, so an empty member cannot replicate
    from the beginning; and restoring the plan again could end elsewhere: `latest` moves.)
    Member 0's restore leaves ACCOUNTS_PENDING in the work directory. None: nothing to do."""
    plan = config.restore
    if plan is None or server.installed():
        return None
    first = member_ordinal == 0 and not (lease is not None and lease.observe().exists)
    if first:
        store, passphrase = store_for(plan.repository, env, RESTORE_STORE)
    elif config.backup is None:
        log.error("this member of a restored server starts from the server's own backups, and the server has no "
                  "object store: starting empty, so replication cannot start")  # fmt: skip
        return None
    else:
        store, passphrase = store_for(config.backup.repository, env, BACKUP_STORE)
        plan = RestorePlan(config.backup.repository, snapshot_set=newest_full(store, config.backup.repository))
    restored = restore(plan, server.data_dir, work_dir / "restore", store=store, passphrase=passphrase,
                       os_user=server.os_user, config=my_cnf)  # fmt: skip
    log.info("restored %s to %s (%s)", restored.label, restored.gtid, restored.last_event)
    if first:
        (work_dir / ACCOUNTS_PENDING).touch()
    return restored


def newest_full(store: ObjectStore, repository: Repository) -> str:
    """The newest full backup's label, waiting for the first one."""
    waited = 0.0
    while not (fulls := list_fulls(store, repository)):
        if waited % 60 == 0:
            log.info("waiting for the primary's first full backup to start from (%.0f s so far)", waited)
        time.sleep(SEED_LOOK_SECONDS)
        waited += SEED_LOOK_SECONDS
    return fulls[-1].label
