"""Client TLS for PostgreSQL: the mounted certificate and key copied where the engine reads
them — its own copies, 0600, because PostgreSQL refuses a key others may read (the mounted
Secret is group-readable for the fsGroup)."""

from __future__ import annotations

import logging
from pathlib import Path

from kuberds.agent.pod import Pod
from kuberds.agent.processes import OsUser
from kuberds.contract import TLS_FILES
from kuberds.contract.settings import ClientTls

log = logging.getLogger("kuberds.agent")


def served_files(pod: Pod) -> tuple[Path, Path]:
    """Where PostgreSQL reads its certificate and key (ssl_cert_file, ssl_key_file)."""
    return pod.run_dir / "tls.crt", pod.run_dir / "tls.key"


class TlsFiles:
    def __init__(self, pod: Pod, user: OsUser):
        self.pod, self.user = pod, user
        self.installed: bool | None = None  # None: not looked yet

    def install(self, tls: ClientTls | None) -> bool:
        """Copies the mounted files; True when they changed. Without them (TLS turned on while
        this pod, made before, has no such mount) TLS stays off here until the rolling update
        replaces the pod: ssl=on without files would stop PostgreSQL."""
        if tls is None:
            self.installed = False
            return False
        sources = tuple(Path(tls.directory) / name for name in TLS_FILES)
        if not all(source.is_file() for source in sources):
            if self.installed is not False:
                log.warning("client TLS is configured but %s has no tls.crt/tls.key: not serving TLS", tls.directory)
            self.installed = False
            return False
        changed = False
        for source, target in zip(sources, served_files(self.pod), strict=True):
            data = source.read_bytes()
            if target.exists() and target.read_bytes() == data:
                continue
            self.user.write_private(target, data)
            changed = True
        self.installed = True
        return changed
