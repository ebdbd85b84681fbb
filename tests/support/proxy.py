"""A proxy pod on this host: the real `kuberds proxy postgres` (PgBouncer under its
supervisor) with the configuration the operator's builder writes, in front of a LocalServer.

In a cluster the proxy reaches the server through the writer Service, which follows the
primary's role label. Here there is no Service: `point_at` does what the endpoints controller
and kube-proxy do (the proxy's server address becomes the new primary's, then RELOAD), and
`follow` does it whenever Patroni names another leader, as the Service would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import psycopg

from kuberds.builders.proxy import pool_settings
from kuberds.contract.layouts import PGBOUNCER
from kuberds.contract.proxy import CONSOLE_DATABASE, CONSOLE_USER
from kuberds.engines.pgbouncer import config_file, hba_file
from kuberds.operations.proxy import Console
from tests.support.dataplane import LocalServer, Member, _postgres_ids
from tests.support.kube import ROOT, free_port, wait_for


class LocalProxy:
    """Use as a context manager; `server`'s agents must have set the proxy's login."""

    def __init__(self, server: LocalServer, workdir: Path, **pool: object):
        self.server, self.workdir = server, workdir
        self.port, self.metrics_port = free_port(), free_port()
        self.console_password = secrets.token_urlsafe(16)
        self.target: Member | None = None
        self.process: subprocess.Popen | None = None
        self.pool = pool
        self._follow: threading.Event | None = None
        self.moves: list[tuple[float, str]] = []  # (when, member) each time the proxy was pointed

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    def config(self, member: Member) -> str:
        """The operator's own configuration for this server, with loopback addresses."""
        settings = pool_settings(self.server.server)
        settings = replace(settings, server_host="127.0.0.1", server_port=member.pg_port, listen_address="127.0.0.1",
                           port=self.port, run_dir=str(self.run_dir), tls_dir=str(self.workdir / "tls"),
                           config_dir=str(self.workdir),
                           # the test certificate names localhost, the proxy connects to 127.0.0.1
                           server_tls="require" if settings.server_tls != "disable" else "disable",
                           **self.pool)  # fmt: skip
        (self.workdir / PGBOUNCER.hba_file).write_text(hba_file(settings))
        return config_file(settings)

    def __enter__(self) -> LocalProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        uid, gid = _postgres_ids()
        tls = self.workdir / "tls"
        tls.mkdir(exist_ok=True)
        for name in ("tls.crt", "tls.key", "ca.crt"):  # a mounted Secret, readable by the pod's group
            shutil.copy(self.server.tls_dir / name, tls / name)
            os.chown(tls / name, uid, gid)
        self.point_at(self.server.primary(), reload=False)
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT / "operator"),
            "KUBERDS_PROXY_CONFIG": str(self.workdir / "pgbouncer.ini"),
            "KUBERDS_RUN_DIR": str(self.run_dir),
            "KUBERDS_TLS_DIR": str(self.workdir / "tls"),
            # The pod reloads what changed, as in a cluster, only sooner than the kubelet's minute.
            "KUBERDS_PROXY_WATCH_SECONDS": "0.2",
            "KUBERDS_PROXY_PORT": str(self.port),
            "KUBERDS_METRICS_PORT": str(self.metrics_port),
            "KUBERDS_ENGINE_USER": "postgres",
            "KUBERDS_PROXY_PASSWORD": self.server.proxy_password,
            "KUBERDS_PROXY_CONSOLE_PASSWORD": self.console_password,
        }
        log = (self.workdir / "proxy.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "kuberds", "proxy", "postgres"], env=env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        wait_for(self._console_answers, timeout=30, what=f"the proxy's console\n{self.log_tail()}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._follow:
            self._follow.set()
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def _console_answers(self) -> bool:
        try:
            self.console().run("SHOW VERSION")
            return True
        except Exception:
            return False

    def console(self) -> Console:
        return Console("local-proxy", "127.0.0.1", self.port, self.console_password)

    def point_at(self, member: Member, reload: bool = True) -> None:
        """What the writer Service does when the role label moves: here the proxy's server
        address changes, and its pod reloads the file as it reloads a changed ConfigMap."""
        path = self.workdir / "pgbouncer.ini"
        reloads = self._reloads()
        path.write_text(self.config(member))
        path.chmod(0o644)
        self.target = member
        self.moves.append((time.monotonic(), member.name))
        if reload:
            wait_for(lambda: self._reloads() > reloads, timeout=10, interval=0.05,
                     what=f"the proxy reloading its configuration\n{self.log_tail()}")  # fmt: skip

    def _reloads(self) -> int:
        log = self.workdir / "proxy.log"
        return log.read_text(errors="replace").count("got SIGHUP") if log.exists() else 0

    def follow(self) -> None:
        """Points the proxy at whichever member Patroni names leader, as the Service would."""
        self._follow = stop = threading.Event()

        def run() -> None:
            while not stop.wait(0.2):
                leader = next((m for m in self.server.members if m.process and m.role() in ("master", "primary")),
                              None)  # fmt: skip
                if leader is not None and leader is not self.target:
                    with contextlib.suppress(Exception):
                        self.point_at(leader)

        threading.Thread(target=run, daemon=True).start()

    def connect(self, user: str = "app", password: str | None = None, dbname: str = "app",
                **kwargs) -> psycopg.Connection:  # fmt: skip
        # Transaction pooling: no server-side prepared statements (PgBouncer 1.18 cannot carry them).
        return psycopg.connect(host="127.0.0.1", port=self.port, user=user, dbname=dbname,
                               password=self.server.master_password if password is None else password,
                               connect_timeout=5, prepare_threshold=None, **kwargs)  # fmt: skip

    def show(self, what: str) -> list[dict]:
        console = {"dbname": CONSOLE_DATABASE, "user": CONSOLE_USER, "password": self.console_password}
        with psycopg.connect(host="127.0.0.1", port=self.port, autocommit=True, prepare_threshold=None,
                             **console) as conn:  # fmt: skip
            cursor = conn.cursor()
            cursor.execute(f"SHOW {what}")
            columns = [c.name for c in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "proxy.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
