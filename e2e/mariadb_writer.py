"""Inserts into a MariaDB endpoint from inside the cluster, run in the client pod (the python of
/opt/kuberds, which has PyMySQL; fed on stdin). One autocommit INSERT at a time, each id
recorded once its commit returned; a failed one drops the connection and the next reconnects
through the Service, so the writer follows the writer endpoint. A statement that hangs is
given up after 3 s (the client's read timeout): its outcome is unknown, it is not counted.
TLS verified against the server's CA, by the Service's name. At the end it reads the table
back through the endpoint and prints one JSON object: acknowledged, lost, errors, and the
longest time without an acknowledged commit.

    python - HOST PORT USER PASSWORD DATABASE CA_FILE SECONDS STOP_FILE [TABLE]

TABLE (default `writes`, made if missing) is the run's own: ids start at 1 in every run.
"""

import contextlib
import json
import os
import sys
import time

import pymysql


def connect(host: str, port: int, user: str, password: str, database: str, ca: str) -> pymysql.Connection:
    return pymysql.connect(host=host, port=port, user=user, password=password, database=database,
                           connect_timeout=3, read_timeout=3, write_timeout=3, autocommit=True,
                           ssl_ca=ca, ssl_verify_cert=True, ssl_verify_identity=True)  # fmt: skip


def main() -> None:
    host, port, user, password, database, ca, seconds, stop_file = sys.argv[1:9]
    table = sys.argv[9] if len(sys.argv) > 9 else "writes"
    if not table.isidentifier():
        raise SystemExit(f"table {table!r}: letters, digits and _ only")
    address = (host, int(port), user, password, database, ca)
    if os.path.exists(stop_file):  # left by an earlier run in the same pod
        os.remove(stop_file)
    connection, acknowledged, errors, samples = None, [], 0, []
    last, longest, i = time.monotonic(), 0.0, 0
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end and not os.path.exists(stop_file):
        i += 1
        try:
            if connection is None:
                connection = connect(*address)
                with connection.cursor() as cursor:
                    cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, "
                                   "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} (id) VALUES (%s)", (i,))
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            acknowledged.append(i)
        except (pymysql.Error, OSError) as error:
            errors += 1
            if len(samples) < 10:
                samples.append(f"{type(error).__name__}: {str(error)[:160]}")
            if connection is not None:
                with contextlib.suppress(pymysql.Error, OSError):
                    connection.close()
            connection = None
            time.sleep(0.1)
    longest = max(longest, time.monotonic() - last)
    reader = connect(*address)
    with reader.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table}")
        present = {row[0] for row in cursor.fetchall()}
    lost = [n for n in acknowledged if n not in present]
    print(json.dumps({"acknowledged": len(acknowledged), "lost": lost, "errors": errors, "samples": samples,
                      "longest_gap_seconds": round(longest, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
