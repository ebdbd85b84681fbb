"""pgBackRest: its configuration, its command lines, and reading its `info` output. Pure.

A server's backups live in one object-store location with two pgBackRest repositories:

    repo1  automated  daily base backups; pgBackRest expires them by time (retentionDays)
    repo2  snapshots  manual and final DBSnapshots; retention never touches them, only
                      deleting the DBSnapshot object does

Both receive every archived WAL segment, so each is complete on its own: a snapshot stays
restorable after the automated backups around it have expired. The store's keys and the
passphrase go into the (0600, memory-backed) configuration file (see `secret_options`).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from kuberds.contract.settings import ObjectStoreTarget, Repository

AUTOMATED, SNAPSHOTS = 1, 2  # repository numbers (see above)
KEEP_FOREVER = 9999999  # pgBackRest's largest retention count: "never expire by count"
SNAPSHOT_ANNOTATION = "kuberds-snapshot"
# pgBackRest never expires a repository's newest full backup. A deleted snapshot that is the
# newest in repo2 is annotated instead, hidden from then on, and expired after the next one.
DELETED_ANNOTATION = "kuberds-deleted"
NEWEST_FULL_ERROR = "[075]"
CIPHER = "aes-256-cbc"
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# Arguments: the store's host and port, a marker file, and the seconds to wait. Connects, sends
# a request line and waits that long at most (half a second: two round trips) for the first
# byte back or the close (head exits 0 on either). A store found silent is taken as silent for 10 s without asking again
# (the marker's age), so the several archive reads of one promotion cost one wait, not one
# each (measured: five, 5 s).
STORE_PROBE = (
    'if [ -n "$(find "$3" -newermt "-10 seconds" 2>/dev/null)" ]; then exit 1; fi; '
    'if timeout "$4" bash -c \'exec 3<>"/dev/tcp/$1/$2" && printf "HEAD / HTTP/1.0\\r\\n\\r\\n" >&3 && '
    'head -c1 <&3 >/dev/null\' probe "$1" "$2" 2>/dev/null; then exit 0; fi; '
    'touch "$3"; exit 1'
)
SILENT_STORE_MARKERS = "/tmp/kuberds-store-silent-"
STORE_PROBE_SECONDS = 0.5


def silent_store_marker(host: str, port: int) -> str:
    """One marker per store (a replica reads its source's archive and, promoted, its own): the
    address hashed, so no spec text becomes a path."""
    return SILENT_STORE_MARKERS + hashlib.sha256(f"{host}:{port}".encode()).hexdigest()[:16]


def store_address(store: ObjectStoreTarget) -> tuple[str, int]:
    """Host and port pgBackRest connects to (always HTTPS: 443 unless the endpoint says)."""
    endpoint = urlsplit(store.endpoint) if store.endpoint else None
    host = endpoint.hostname if endpoint and endpoint.hostname else f"s3.{store.region}.amazonaws.com"
    return host, (endpoint.port if endpoint and endpoint.port else 443)


def repository_options(number: int, repository: Repository, subpath: str,
                       ca_file: Path | None = None) -> dict[str, str]:  # fmt: skip
    """`ca_file`: where the agent wrote the store's CA bundle (a private CA), if it has one."""
    store = repository.store
    host, port = store_address(store)
    options = {
        "type": "s3",
        "path": f"{repository.path}/{subpath}",
        "s3-bucket": store.bucket,
        "s3-region": store.region,
        "s3-endpoint": host,
        "s3-uri-style": "path" if store.force_path_style else "host",
        "storage-verify-tls": "y" if store.verify_tls else "n",
    }
    if port != 443:
        options["storage-port"] = str(port)
    if ca_file and store.ca_bundle and store.verify_tls:
        options["storage-ca-file"] = str(ca_file)
    if repository.encrypted:
        options["cipher-type"] = CIPHER
    return {f"repo{number}-{key}": value for key, value in options.items()}


def configuration(
    *,
    repository: Repository,
    retention_days: int,
    data_dir: Path,
    port: int,
    socket_dir: Path,
    spool_dir: Path,
    log_dir: Path,
    secrets: dict[str, str],
    ca_file: Path | None = None,
) -> str:
    """pgbackrest.conf for a server's own repositories.

    Retention: repo1 keeps full backups by time: an automated full backup goes once a newer
    one is itself older than `retention_days`, so a restore to any second of the window finds
    a base backup before it, and the WAL before the oldest remaining backup goes with it
    (pgBackRest expires after every backup). repo2 never expires by count (KEEP_FOREVER): a
    snapshot goes only when its DBSnapshot is deleted; its WAL is trimmed to what each
    snapshot needs to be consistent, plus continuous WAL from the newest one. No archive-push-queue-max: when the object
    store is down, WAL stays on the volume rather than being dropped.
    """
    options = {
        **repository_options(AUTOMATED, repository, "automated", ca_file),
        f"repo{AUTOMATED}-retention-full-type": "time",
        f"repo{AUTOMATED}-retention-full": str(max(retention_days, 1)),
        **repository_options(SNAPSHOTS, repository, "snapshots", ca_file),
        f"repo{SNAPSHOTS}-retention-full": str(KEEP_FOREVER),
        # WAL for old snapshots: only what makes each of them consistent.
        f"repo{SNAPSHOTS}-retention-archive-type": "full",
        f"repo{SNAPSHOTS}-retention-archive": "1",
        **common_options(spool_dir, log_dir),
        "archive-async": "y",
        "start-fast": "y",
        "delta": "y",
        **secrets,
    }
    stanza = {"pg1-path": str(data_dir), "pg1-port": str(port), "pg1-socket-path": str(socket_dir)}
    return _ini({"global": options, repository.stanza: stanza})


def restore_configuration(*, repository: Repository, spool_dir: Path, log_dir: Path, data_dir: Path,
                          secrets: dict[str, str], ca_file: Path | None = None) -> str:  # fmt: skip
    """pgbackrest.conf for reading another server's repositories (restore, archive-get)."""
    options = {
        **repository_options(AUTOMATED, repository, "automated", ca_file),
        **repository_options(SNAPSHOTS, repository, "snapshots", ca_file),
        **common_options(spool_dir, log_dir),
        **secrets,
    }
    return _ini({"global": options, repository.stanza: {"pg1-path": str(data_dir)}})


def common_options(spool_dir: Path, log_dir: Path) -> dict[str, str]:
    return {
        "compress-type": "zst",
        "compress-level": "3",
        "process-max": "2",
        "spool-path": str(spool_dir),
        "lock-path": str(spool_dir / "lock"),
        "log-path": str(log_dir),
        "log-level-console": "warn",
        "log-level-file": "info",
    }


def _ini(sections: dict[str, dict[str, str]]) -> str:
    """The file's text; a control character in a name or value (a newline would start another
    option, another section) is refused, whatever let it through before."""
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in sorted(options.items()):
            if CONTROL.search(key) or CONTROL.search(section) or CONTROL.search(str(value)):
                raise ValueError(f"pgbackrest.conf: control character in [{section}] {key}")
            lines.append(f"{key}={value}")
        lines.append("")
    return "\n".join(lines)


def secret_options(repository: Repository, access_key: str | None, secret_key: str | None,
                   cipher_pass: str | None) -> dict[str, str]:  # fmt: skip
    """Keys for both repositories. They go into the (0600, memory-backed) configuration file
    rather than PGBACKREST_* variables: variables would override the file, and a restore
    reads the source's repository with the source's keys while archiving to our own."""
    options: dict[str, str] = {}
    for number in (AUTOMATED, SNAPSHOTS):
        if access_key and secret_key:
            options[f"repo{number}-s3-key"], options[f"repo{number}-s3-key-secret"] = access_key, secret_key
        if repository.encrypted and cipher_pass:
            options[f"repo{number}-cipher-pass"] = cipher_pass
    return options


@dataclass(frozen=True)
class Commands:
    """pgBackRest command lines for one configuration file and stanza."""

    config: Path
    stanza: str

    def base(self, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args]

    def archive_push(self) -> str:
        return " ".join(self.base("archive-push", '"%p"'))

    def archive_get(self, probe: tuple[str, int] | None = None, marker: str | None = None,
                    wait: float = STORE_PROBE_SECONDS) -> str:  # fmt: skip
        """PostgreSQL's restore_command. With `probe` (the store's address), a store that does
        not answer within half a second reads as "no such file" at once: pgBackRest itself
        retries for minutes (measured: over 300 s per call with its defaults), which held a promotion
        back (the new primary stays read-only while it asks the archive for timeline history)
        and kept a standby from falling back to streaming.

        The probe wants an answer, not only a connection: a frozen store's kernel still
        completes the TCP handshake (measured: a node frozen whole, its S3 pod with it, left
        the promoted standby read-only past 120 s). A plain request line draws a reply or a
        close from a plain HTTP server and from a TLS one alike (not a TLS record), at once."""
        command = " ".join(self.base("archive-get", "%f", '"%p"'))
        if probe is None:
            return command
        host, port = probe
        # The address goes to bash as arguments, never as script text: $1 and $2 are not
        # parsed again, whatever they hold (the API also admits only host names and addresses).
        arguments = shlex.join([host, str(port), marker or silent_store_marker(host, port), str(wait)])
        return f"bash -c {shlex.quote(STORE_PROBE)} store-probe {arguments} && {command}"

    def push_now(self, wal_path: Path) -> list[str]:
        """One segment, synchronously (the async queue belongs to PostgreSQL's archiver)."""
        return self.base("--no-archive-async", "archive-push", str(wal_path))

    def stanza_create(self) -> list[str]:
        return self.base("stanza-create")

    def backup(self, kind: str, repo: int = AUTOMATED, annotations: dict[str, str] | None = None) -> list[str]:
        extra = [f"--annotation={key}={value}" for key, value in (annotations or {}).items()]
        return self.base(f"--repo={repo}", f"--type={kind}", *extra, "backup")

    def expire(self, repo: int) -> list[str]:
        return self.base(f"--repo={repo}", "expire")

    def expire_set(self, label: str, repo: int) -> list[str]:
        return self.base(f"--repo={repo}", f"--set={label}", "expire")

    def mark_deleted(self, label: str) -> list[str]:
        return self.base(f"--repo={SNAPSHOTS}", f"--set={label}", f"--annotation={DELETED_ANNOTATION}=true",
                         "annotate")  # fmt: skip

    def info(self) -> list[str]:
        return self.base("--output=json", "info")

    def restore(self, data_dir: Path, snapshot_set: str | None, target_time: str | None = None) -> list[str]:
        """The backup to start from: a snapshot's set; for a time, --type=time so pgBackRest
        picks the newest backup that ended before it (not simply the newest one); else the
        newest. The recovery settings pgBackRest writes are replaced by Patroni's own."""
        if snapshot_set:
            target = [f"--repo={SNAPSHOTS}", f"--set={snapshot_set}", "--type=immediate", "--target-action=promote"]
        elif target_time:
            target = [f"--repo={AUTOMATED}", "--type=time", f"--target={target_time}", "--target-action=promote"]
        else:  # to the end of the archive, where recovery ends by itself (pgBackRest refuses a target action)
            target = [f"--repo={AUTOMATED}", "--type=default"]
        return self.base(f"--pg1-path={data_dir}", *target, "restore")

    def replica_restore(self, data_dir: Path) -> str:
        """Patroni's create_replica method: a standby from the newest automated backup."""
        return " ".join(self.base(f"--pg1-path={data_dir}", f"--repo={AUTOMATED}", "--type=standby", "restore"))


@dataclass(frozen=True)
class BackupRecord:
    label: str
    repo: int
    kind: str  # full, diff, incr
    started: datetime
    stopped: datetime
    size_bytes: int  # in the repository (compressed, encrypted)
    database_bytes: int  # of the data directory it copied
    annotations: dict[str, str]


def parse_info(info: list[dict], stanza: str) -> list[BackupRecord]:
    """Backups of `stanza` from `pgbackrest info --output=json`, oldest first."""
    records = []
    for entry in info:
        if entry.get("name") != stanza:
            continue
        for backup in entry.get("backup", []):
            timestamp = backup["timestamp"]
            records.append(
                BackupRecord(
                    label=backup["label"],
                    repo=int(backup.get("database", {}).get("repo-key", AUTOMATED)),
                    kind=backup["type"],
                    started=datetime.fromtimestamp(timestamp["start"], UTC),
                    stopped=datetime.fromtimestamp(timestamp["stop"], UTC),
                    size_bytes=int(backup["info"]["repository"].get("delta", backup["info"]["repository"]["size"])),
                    database_bytes=int(backup["info"]["size"]),
                    annotations=dict(backup.get("annotation") or {}),
                )
            )
    return sorted(records, key=lambda r: r.stopped)


def stanza_ready(info: list[dict], stanza: str) -> bool:
    """Whether every repository holds the stanza (code 0 "ok" or 2 "no valid backups").
    The stanza's overall code is no guide: with two repositories it reads 4, "different
    across repos", as soon as only one of them has a backup."""
    for entry in info:
        if entry.get("name") == stanza:
            repos = entry.get("repo") or []
            return bool(repos) and all(int(r.get("status", {}).get("code", 99)) in (0, 2) for r in repos)
    return False


def archive_max(info: list[dict], stanza: str, repo: int = AUTOMATED) -> str | None:
    """The newest WAL file in a repository's archive (of the current database), or None."""
    for entry in info:
        if entry.get("name") != stanza:
            continue
        names = [a.get("max") for a in entry.get("archive", []) if (a.get("database") or {}).get("repo-key") == repo]
        names = [n for n in names if n]
        return max(names) if names else None
    return None
