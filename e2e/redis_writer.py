"""Writes to a Redis endpoint from inside the cluster, run in the client pod (the python of
/opt/kuberds, which has the redis client; fed on stdin). One SET at a time, each acknowledged
key recorded; a failed write drops the connection and the next one reconnects through the
Service, so the writer follows the primary endpoint. At the end it reads every acknowledged
key back through the endpoint and prints one JSON object: acknowledged, lost, errors, and
the longest time without an acknowledged write.

    python - HOST PORT PASSWORD SECONDS STOP_FILE
"""

import json
import os
import sys
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(host: str, port: int, password: str) -> redis.Redis:
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def main() -> None:
    host, port, password, seconds, stop_file = (
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3],
        float(sys.argv[4]),
        sys.argv[5],
    )
    if os.path.exists(stop_file):  # left by an earlier run in the same pod
        os.remove(stop_file)
    client, acknowledged, errors = connect(host, port, password), [], 0
    last, longest, i = time.monotonic(), 0.0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stop_file):
        try:
            client.set(f"w{i}", str(i))
            now = time.monotonic()
            longest, last = max(longest, now - last), now
            acknowledged.append(i)
        except (redis.RedisError, OSError):
            errors += 1
            client.close()
            client = connect(host, port, password)
            time.sleep(0.05)
        i += 1
    longest = max(longest, time.monotonic() - last)
    reader, lost = connect(host, port, password), []
    for start in range(0, len(acknowledged), 500):
        chunk = acknowledged[start : start + 500]
        values = reader.mget([f"w{n}" for n in chunk])
        lost += [n for n, v in zip(chunk, values, strict=True) if v is None]
    print(
        json.dumps(
            {
                "acknowledged": len(acknowledged),
                "lost": lost[:50],
                "lost_count": len(lost),
                "errors": errors,
                "max_gap_seconds": round(longest, 2),
            }
        )
    )


main()
