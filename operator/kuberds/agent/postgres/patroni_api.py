"""Patroni's REST API on this member, as the agent uses it: state, cluster-wide settings,
the synchronous-standby check, restarts. Unsafe requests carry the HA API credentials."""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from kuberds.contract import PRIMARY, REPLICA, basic_auth

# Patroni's /patroni role names, as kuberds' (every standby is "replica" there, synchronous
# or not; 3.0 calls the leader "master").
# A read replica's leader is Patroni's "standby_leader": a standby of its source.
STANDBY_LEADER = "standby_leader"
ROLES = {"master": PRIMARY, "primary": PRIMARY, "replica": REPLICA, STANDBY_LEADER: REPLICA}


def api_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies a member's HA API certificate against the server's CA. Not its name: the API
    is reached by address (127.0.0.1 here), which the certificate does not carry."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    return context


class PatroniApi:
    def __init__(self, port: int, password: str | None, ca_file: Path | None = None):
        """With `ca_file`, the API is served over TLS (see patroni.restapi_section)."""
        self.base = f"{'https' if ca_file else 'http'}://127.0.0.1:{port}"
        self.headers, self.ca_file = basic_auth(password), ca_file

    def _open(self, request: urllib.request.Request, timeout: float):
        # A context per call: the CA file may be renewed under a running agent.
        context = api_context(self.ca_file) if self.ca_file else None
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def call(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 2.0):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        try:
            with self._open(request, timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:  # Patroni answers 503 with a body for replicas
            return json.loads(error.read() or b"null")

    def state(self) -> dict:
        """/patroni, or {} while Patroni does not answer."""
        try:
            return self.call("/patroni") or {}
        except OSError:
            return {}

    def cluster(self) -> dict:
        try:
            return self.call("/cluster") or {}
        except OSError:
            return {}

    def settings(self) -> dict | None:
        """The cluster-wide settings Patroni keeps in the DCS (None: unknown now)."""
        try:
            return self.call("/config") or {}
        except (OSError, ValueError):
            return None

    def update_settings(self, settings: dict) -> None:
        self.call("/config", "PATCH", settings)

    def restart_pending(self) -> None:
        with contextlib.suppress(ValueError):  # Patroni answers a restart in plain text, not JSON
            self.call("/restart", "POST", {"restart_pending": True}, timeout=60)

    def is_synchronous_standby(self) -> bool | None:
        """Whether this member is the synchronous standby (GET /sync answers 200 only then):
        the one a switchover may go to without losing commits. None when unknown."""
        try:
            with self._open(urllib.request.Request(self.base + "/sync"), 2):
                return True
        except urllib.error.HTTPError:
            return False
        except OSError:
            return None
