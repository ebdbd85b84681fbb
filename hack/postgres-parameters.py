#!/usr/bin/env python3
"""Writes operator/kuberds/engines/postgres_parameters.json: the PostgreSQL parameters a user may
set in spec.parameters, with each one's type, unit, range or values, read from a real
PostgreSQL's pg_settings (the Debian package the image ships).

    python3 hack/postgres-parameters.py          # as root: starts a throw-away server as postgres

The allow-list is the categories below, minus the names below them: what an RDS parameter
group calls "modifiable", and nothing that runs a command, loads a library, names a file or
directory, opens a socket, turns durability off, or belongs to what kuberds and Patroni
manage (replication, archiving, recovery, TLS files, ports, logging destinations). Run it
again for a new major version and review the diff.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "operator" / "kuberds" / "engines" / "postgres_parameters.json"
BIN = Path("/usr/lib/postgresql/15/bin")

ALLOWED_CATEGORIES = (
    "Autovacuum",
    "Client Connection Defaults / Locale and Formatting",
    "Client Connection Defaults / Statement Behavior",
    "Lock Management",
    "Query Tuning / Genetic Query Optimizer",
    "Query Tuning / Other Planner Options",
    "Query Tuning / Planner Cost Constants",
    "Query Tuning / Planner Method Configuration",
    "Reporting and Logging / What to Log",
    "Reporting and Logging / When to Log",
    "Resource Usage / Asynchronous Behavior",
    "Resource Usage / Background Writer",
    "Resource Usage / Cost-Based Vacuum Delay",
    "Resource Usage / Memory",
    "Statistics / Cumulative Query and Index Statistics",
    "Statistics / Monitoring",
    "Version and Platform Compatibility / Other Platforms and Clients",
    "Version and Platform Compatibility / Previous PostgreSQL Versions",
    "Write-Ahead Log / Checkpoints",
)
ALLOWED_NAMES = (
    "gin_fuzzy_search_limit", "max_connections", "superuser_reserved_connections", "tcp_keepalives_count",
    "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_user_timeout", "client_connection_check_interval",
    "authentication_timeout", "temp_file_limit", "max_files_per_process", "commit_delay", "commit_siblings",
    "wal_buffers", "wal_compression", "wal_writer_delay", "wal_writer_flush_after", "wal_skip_threshold",
    "max_slot_wal_keep_size", "wal_keep_size", "wal_sender_timeout", "track_commit_timestamp",
    "max_replication_slots", "max_wal_senders", "vacuum_defer_cleanup_age", "hot_standby_feedback",
    "max_standby_archive_delay", "max_standby_streaming_delay", "wal_receiver_status_interval",
    "wal_receiver_timeout", "wal_retrieve_retry_interval", "max_logical_replication_workers",
    "max_sync_workers_per_subscription", "ssl_min_protocol_version", "exit_on_error",
)  # fmt: skip
DENIED_NAMES = (
    "session_replication_role",  # replica mode skips triggers and foreign keys for every session
    "default_tablespace",
    "temp_tablespaces",  # tablespaces are directories kuberds does not make
    "dynamic_shared_memory_type",
    "shared_memory_type",
    "huge_page_size",
    "min_dynamic_shared_memory",
    "password_encryption",  # kuberds keeps SCRAM
)
# Values narrowed below what PostgreSQL accepts.
NARROWED = {"ssl_min_protocol_version": ["TLSv1.2", "TLSv1.3"]}


def start_server(work: Path) -> tuple[subprocess.Popen, Path]:
    user = pwd.getpwnam("postgres")
    os.chown(work, user.pw_uid, user.pw_gid)

    def as_postgres(argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(argv, user=user.pw_uid, group=user.pw_gid, **kwargs)

    data = work / "data"
    assert as_postgres([str(BIN / "initdb"), "-D", str(data), "-A", "trust"], stdout=subprocess.DEVNULL).wait() == 0
    server = as_postgres([str(BIN / "postgres"), "-D", str(data), "-k", str(work), "-c", "listen_addresses="],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return server, work


def settings(socket_dir: Path) -> list[dict]:
    query = ("SELECT json_agg(json_build_object('name', name, 'category', category, 'type', vartype, 'unit', unit,"
             " 'min', min_val, 'max', max_val, 'values', enumvals) ORDER BY name) FROM pg_settings")  # fmt: skip
    for _ in range(50):
        result = subprocess.run(["psql", "-h", str(socket_dir), "-U", "postgres", "-At", "-c", query, "postgres"],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode == 0:
            return json.loads(result.stdout)
        time.sleep(0.2)
    raise SystemExit(f"psql failed: {result.stderr}")


def allowed(setting: dict) -> bool:
    name = setting["name"]
    if name in DENIED_NAMES:
        return False
    return setting["category"] in ALLOWED_CATEGORIES or name in ALLOWED_NAMES


def number(text: str | None) -> int | float | None:
    if text is None:
        return None
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def render(rows: list[dict], version: str) -> str:
    """One parameter a line: name → [type, unit, minimum, maximum, values]."""
    table = {
        row["name"]: [row["type"], row["unit"], number(row["min"]), number(row["max"]),
                      NARROWED.get(row["name"], row["values"] or [])]
        for row in rows
    }  # fmt: skip
    lines = [f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in table.items()]
    head = {"version": version, "generatedBy": "hack/postgres-parameters.py"}
    return "{\n" + f'  "_": {json.dumps(head)},\n' + ",\n".join(lines) + "\n}\n"


def main() -> int:
    if os.geteuid() != 0:
        print("run as root: the throw-away server runs as the postgres user", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as directory:
        server, socket_dir = start_server(Path(directory))
        try:
            rows = [r for r in settings(socket_dir) if allowed(r)]
            version = subprocess.run([str(BIN / "postgres"), "--version"], capture_output=True, text=True).stdout
        finally:
            server.terminate()
            server.wait(timeout=30)
    OUTPUT.write_text(render(rows, version.split()[2].split(".")[0]))
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {len(rows)} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
