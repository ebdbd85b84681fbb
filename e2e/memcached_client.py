"""A Memcached cluster client as ElastiCache's are, run inside the client pod (python of
/opt/kuberds, fed on stdin): it asks the configuration endpoint `config get cluster`, hashes
keys over the nodes it names (by their addresses), stores and reads them back, and prints
what it saw as JSON.

    python - HOST PORT [KEYS] [PREFIX]   (HOST:PORT the configuration endpoint)
"""

import json
import socket
import sys
import zlib

from kuberds.contract.memcached import parse_config_response


def ask(address: tuple[str, int], command: bytes, ends: tuple[bytes, ...]) -> bytes:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(command)
        data = b""
        while not data.endswith(ends):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    keys = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    prefix = sys.argv[4] if len(sys.argv) > 4 else "key"
    membership = parse_config_response(ask((host, port), b"config get cluster\r\n", (b"END\r\n",)))
    nodes = [(n.ip, n.port) for n in membership.nodes]
    stored = {f"{ip}:{p}": 0 for ip, p in nodes}
    hits = 0
    if nodes:
        for i in range(keys):
            key = f"{prefix}-{i}"
            node = nodes[zlib.crc32(key.encode()) % len(nodes)]
            value = f"v{i}".encode()
            reply = ask(
                node,
                b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (key.encode(), len(value), value, key.encode()),
                (b"END\r\n", b"ERROR\r\n"),
            )
            if reply.startswith(b"STORED\r\n") and value in reply:
                stored[f"{node[0]}:{node[1]}"] += 1
                hits += 1
    print(
        json.dumps(
            {
                "version": membership.version,
                "nodes": [n.entry() for n in membership.nodes],
                "stored": stored,
                "hits": hits,
            }
        )
    )


main()
