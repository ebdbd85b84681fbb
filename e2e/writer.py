"""Continuous inserts from inside the cluster; runs in the e2e client pod (kuberds' postgres
image has psycopg in /opt/kuberds). Only the standard library and psycopg: it is copied into
the pod through a ConfigMap, not installed.

    python writer.py --dsn "host=db.ns.svc user=… password=… dbname=app" --seconds 60

One autocommit INSERT per id, one id at a time; an id is acknowledged only once its commit
returned. A hung statement is abandoned after 3 s (statement_timeout, TCP keepalives) and the
connection rebuilt, so the writer follows the writer Service to a new primary. `--deadline`
adds the client's own limit, as an application's request deadline: nothing else ends the
wait on a frozen server, whose kernel still acknowledges every packet (no TCP timeout or
keepalive fires) while postgres, frozen, never answers nor enforces its statement_timeout.
Off by default: a proxy holding queries through a switchover is not an error. At the end it
prints one JSON object: the acknowledged ids and the longest time without an acknowledged
write (what an application sees of a failover).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time

import psycopg

# No server-side prepared statements: through a transaction-pooling proxy the next statement
# may run on another server connection.
CONNECT = {"connect_timeout": 3, "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1,
           "keepalives_count": 2, "options": "-c statement_timeout=3000", "autocommit": True,
           "prepare_threshold": None}  # fmt: skip


class Deadline(Exception):
    """The server did not answer in time; the connection is left to its hung thread."""


def within_deadline(work, *args, seconds: float | None = None, **kwargs):
    """Runs work(*args, **kwargs) in a daemon thread and waits at most `seconds` for it (None:
    in this thread, no limit). A hung call keeps its thread (and its connection) until the
    process ends: one per outage, not per insert."""
    if seconds is None:
        return work(*args, **kwargs)
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = work(*args, **kwargs)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Deadline(f"no answer within {seconds:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def run(dsn: str, table: str, seconds: float, interval: float, stop_file: str | None = None,
        deadline: float | None = None) -> dict:  # fmt: skip
    acked: list[int] = []
    errors: list[str] = []
    ack_times: list[float] = []
    started = time.monotonic()
    connection = None
    next_id = 1
    while time.monotonic() - started < seconds and not (stop_file and os.path.exists(stop_file)):
        try:
            if connection is None:
                connection = within_deadline(psycopg.connect, dsn, seconds=deadline, **CONNECT)
                create = (f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, at timestamptz NOT NULL "
                          "DEFAULT clock_timestamp())")  # fmt: skip
                within_deadline(connection.execute, create, seconds=deadline)
            insert = f"INSERT INTO {table} (id) VALUES (%s) ON CONFLICT (id) DO NOTHING"
            within_deadline(connection.execute, insert, (next_id,), seconds=deadline)
            acked.append(next_id)
            ack_times.append(time.monotonic() - started)
            next_id += 1
        except (psycopg.Error, Deadline) as error:
            # The commit's outcome is unknown: the id is not acknowledged, and it is retried
            # (ON CONFLICT keeps the retry harmless if the first attempt did commit).
            errors.append(f"{time.monotonic() - started:.2f}s {type(error).__name__}: {str(error).strip()[:160]}")
            if connection is not None and not isinstance(error, Deadline):  # closing a hung one hangs too
                connection.close()
            connection = None
            time.sleep(0.2)
            continue
        time.sleep(interval)
    # An outage still going on when the load stops counts too: up to the end of the run.
    gaps = [b - a for a, b in itertools.pairwise([*ack_times, time.monotonic() - started])]
    longest = max(gaps, default=0.0)
    at = ack_times[gaps.index(longest)] if gaps else 0.0
    # Wall-clock start of the longest gap, for comparing with what the caller did when.
    at_epoch = time.time() - (time.monotonic() - started) + at
    return {"acked": acked, "errors": errors[:20], "error_count": len(errors),
            "longest_gap_seconds": round(longest, 3), "longest_gap_started_epoch": round(at_epoch, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--table", default="writes")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--stop-file", help="stop early once this file exists")
    parser.add_argument("--deadline", type=float, help="seconds a statement may take (default: no client limit)")
    args = parser.parse_args()
    print(json.dumps(run(args.dsn, args.table, args.seconds, args.interval, args.stop_file, args.deadline)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
