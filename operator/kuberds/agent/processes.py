"""Running the engine's programs: as its OS user (the agent may be root in tests, never in a
pod), and one long job at a time off the loop thread (a backup), so the loop keeps reporting."""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kuberds.agent")


class OsUser:
    """Runs commands as the engine's OS user, with the agent's environment for them."""

    def __init__(self, user: str | None, env: dict[str, str], cwd: Path, command_env: dict[str, str] | None = None):
        """`env` is for every process; `command_env` is added for the agent's own commands
        (`run`), not for the long-running ones it starts (`popen`: the HA manager)."""
        self.env, self.cwd, self.command_env = env, cwd, command_env or {}
        self.user = pwd.getpwnam(user) if user and os.geteuid() == 0 else None

    @property
    def name(self) -> str:
        """The login name commands run under (the agent's own when it does not switch users)."""
        return self.user.pw_name if self.user else pwd.getpwuid(os.getuid()).pw_name

    def own(self, *paths: Path) -> None:
        if self.user:
            for path in paths:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        if self.user:
            kwargs |= {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        kwargs.setdefault("env", self.env)
        return subprocess.Popen(argv, cwd=str(self.cwd), **kwargs)

    def run(self, argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        process = self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**self.env, **self.command_env})  # fmt: skip
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        return subprocess.CompletedProcess(argv, process.returncode, out, err)

    def write_private(self, path: Path, text: str | bytes) -> None:
        """Private from its first byte (secrets, keys), and whole: readers see the old file or
        the new one, never a part."""
        data = text.encode() if isinstance(text, str) else text
        partial = path.with_name(f".{path.name}.new")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(partial, 0o600)  # an existing leftover keeps its mode otherwise
        self.own(partial)
        os.replace(partial, path)


class Worker:
    """One long job at a time, off the loop thread."""

    def __init__(self):
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, name: str, job: Callable[[], None]) -> None:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("job %s failed", name)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
