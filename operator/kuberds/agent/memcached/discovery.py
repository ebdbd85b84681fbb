"""The configuration endpoint's server: ElastiCache Auto Discovery (kuberds.contract.memcached)
on the agent port, from the membership the agent last read. asyncio in a thread of its own,
so a slow client never holds the agent's loop.

It speaks the few commands discovery clients send — `config get cluster`, the legacy
`get AmazonElastiCache:cluster`, `version` and `quit` — and answers anything else ERROR, as
memcached does for a command it does not know: the configuration endpoint is not a cache node.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading

from kuberds.contract.memcached import LEGACY_KEY, Membership, config_response, legacy_response

log = logging.getLogger("kuberds.agent")

MAX_LINE = 2048  # a command line longer than this is not a discovery client: the connection closes
IDLE_SECONDS = 300  # clients poll about every minute; a connection idle longer is dropped
NOT_KNOWN = b"SERVER_ERROR cluster membership not known yet\r\n"


class DiscoveryServer:
    def __init__(self, address: str, port: int, version: str, tls: ssl.SSLContext | None = None):
        self.address, self.port, self.version, self.tls = address, port, version, tls
        self.membership: Membership | None = None
        self.ready = threading.Event()

    def update(self, membership: Membership | None) -> None:
        if membership is not None and membership != self.membership:
            log.info("discovery version %s: %s", membership.version, " ".join(n.entry() for n in membership.nodes))
        self.membership = membership if membership is not None else self.membership

    def answer(self, line: bytes) -> bytes | None:
        """The reply to one command line; None: close the connection."""
        command = line.strip().decode("ascii", errors="replace")
        current = self.membership
        if command == "config get cluster":
            return config_response(current) if current else NOT_KNOWN
        if command == f"get {LEGACY_KEY}":
            return legacy_response(current) if current else b"END\r\n"
        if command == "version":
            return f"VERSION {self.version}\r\n".encode()
        if command == "quit":
            return None
        return b"ERROR\r\n"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), IDLE_SECONDS)
                if not line:
                    break
                reply = self.answer(line)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.LimitOverrunError):
            pass  # idle, an over-long line, or a client gone
        finally:
            writer.close()

    def start(self) -> None:
        threading.Thread(target=asyncio.run, args=(self._serve(),), name="discovery", daemon=True).start()
        if not self.ready.wait(10):
            raise RuntimeError(f"discovery server did not start on {self.address}:{self.port}")

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._client, self.address, self.port, limit=MAX_LINE, ssl=self.tls)
        self.ready.set()
        async with server:
            await server.serve_forever()
