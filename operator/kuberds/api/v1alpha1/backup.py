"""Backups and restores: the object store, encryption, the daily window, and where a new
server's data comes from."""

from __future__ import annotations

from kuberds.api import rules as cel
from kuberds.api.schema import Rule, Timestamp, field, model
from kuberds.api.v1alpha1.common import NAME_PATTERN

# A host name (RFC 1123 labels) or an IPv4 address, or an IPv6 one in brackets; then a port.
# Nothing else: the address reaches configuration files and the restore command.
HOST_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
ENDPOINT_PATTERN = rf"^https?://({HOST_PATTERN}|\[[0-9A-Fa-f:.]+\])(:[0-9]{{1,5}})?/?$"


@model()
class ObjectStore:
    """An S3-compatible bucket: AWS S3, Ceph RGW, SeaweedFS, MinIO, GCS interoperability."""

    bucket: str = field("Bucket name.", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", max_length=63)
    endpoint: str | None = field(
        "Endpoint URL for a non-AWS store: http(s), a host name or address, an optional port, no path; "
        "e.g. https://seaweedfs.storage:8333.",
        pattern=ENDPOINT_PATTERN,
    )
    region: str = field("Region of the bucket.", default="us-east-1", max_length=64, pattern=r"^[a-z0-9-]+$")
    path: str = field(
        "Prefix inside the bucket; kuberds adds <namespace>/<name>/ under it.",
        default="kuberds",
        pattern=r"^[A-Za-z0-9._/-]*$",
    )
    credentials_secret_name: str = field(
        "Secret in the same namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
        pattern=NAME_PATTERN,
    )
    force_path_style: bool = field(
        "Address the bucket as <endpoint>/<bucket> (most non-AWS stores need this).", default=True
    )
    verify_tls: bool = field("Verify the endpoint's TLS certificate.", default=True)
    ca_secret_name: str | None = field(
        "Secret in the same namespace whose key ca.crt holds the CA certificate(s) that signed the endpoint's "
        "certificate (a private CA). Its content may be rotated; kuberds passes it on at its next pass.",
        pattern=NAME_PATTERN,
    )


@model()
class BackupEncryption:
    """Encryption of the backup repository (on by default: an object store is someone else's disk)."""

    enabled: bool = field("Encrypt backups and archived WAL/binlogs before they leave the pod. Cannot change.",
                          default=True,
                          immutable="backup.encryption.enabled cannot change")  # fmt: skip
    key_secret_name: str | None = field(
        "Secret with key `key` holding the passphrase; kuberds generates <name>-backup-key when omitted. "
        "Cannot change (the repository stays readable only with its passphrase).",
        pattern=NAME_PATTERN,
        immutable="backup.encryption.keySecretName cannot change: the repository needs its passphrase",
    )


@model()
class Backup:
    """Automated backups: continuous log archiving plus a daily base backup in the window."""

    retention_days: int = field(
        "Days of point-in-time recoverability to keep, like RDS BackupRetentionPeriod. "
        "0 turns automated backups off. Manual DBSnapshots are never removed by retention.",
        default=7,
        minimum=0,
        maximum=35,
    )
    window: str = field(
        "Daily window for the base backup, HH:MM-HH:MM in UTC, at least 30 minutes, "
        "like RDS PreferredBackupWindow. Must not overlap maintenanceWindow.",
        default="03:00-03:30",
        pattern=cel.DAILY_WINDOW_PATTERN,
        max_length=11,
        rules=[cel.window_long_enough("backup.window", weekly=False)],
    )
    object_store: ObjectStore | None = field(
        "Where backups go. Omit to use the object store the operator was installed with. "
        "Cannot change once set (the backups and WAL archive live there).",
        immutable="backup.objectStore cannot change once set: the backups and WAL archive live there",
    )
    encryption: BackupEncryption = field("Repository encryption.", default_factory=BackupEncryption)


@model()
class PointInTime:
    """Restore another instance's data as it was at one moment."""

    source: str = field("Name of the DBInstance or DBCluster (same namespace) to restore from.",
                        pattern=NAME_PATTERN, max_length=63)  # fmt: skip
    time: Timestamp | None = field("The moment to restore to (RFC 3339, UTC), inside the source's retention.")
    latest: bool = field("Restore to the latest restorable time instead of `time`.", default=False)


@model(
    Rule(cel.exactly_one_of("fromSnapshot", "pointInTime"),
         "restore needs exactly one of restore.fromSnapshot or restore.pointInTime"),
    Rule("!has(self.pointInTime) || has(self.pointInTime.time) != self.pointInTime.latest",
         "restore.pointInTime needs exactly one of time or latest: true", field_path=".pointInTime"),
)  # fmt: skip
class Restore:
    """Create this server from a backup. Always into a new server, never over its source."""

    from_snapshot: str | None = field("Name of a DBSnapshot in the same namespace.", pattern=NAME_PATTERN,
                                      max_length=63)  # fmt: skip
    point_in_time: PointInTime | None = field("Point-in-time restore from another server's backups.")
