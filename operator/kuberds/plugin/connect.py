"""`connect`: the engine's own shell client, through `kubectl port-forward` to one member pod.

The password goes to the client in its environment (PGPASSWORD, MYSQL_PWD, REDISCLI_AUTH),
never on a command line another user could read in `ps`. TLS is used whenever the server
serves it, the certificate checked against the server's CA (from the certificate Secret's
ca.crt); the forwarded address is 127.0.0.1, which no certificate names, so the CA is what
is verified (psql's sslmode=verify-ca), not the name.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from kuberds.plugin.client import Client
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import (
    CACHECLUSTER,
    READREPLICA,
    KindInfo,
    engine_of,
    is_primary_role,
    members_of,
    name_of,
    pod_selector,
    primary_of,
    spec,
    status,
)

PASSWORD_VARIABLE = {"postgres": "PGPASSWORD", "mariadb": "MYSQL_PWD", "mysql": "MYSQL_PWD", "redis": "REDISCLI_AUTH"}
CLIENT_PROGRAM = {"postgres": "psql", "mariadb": "mariadb", "mysql": "mysql", "redis": "redis-cli"}
INSTALL_HINT = {"psql": "postgresql-client", "mariadb": "mariadb-client", "mysql": "mysql-client",
                "redis-cli": "redis-tools"}  # fmt: skip
DEFAULT_PORT = {"postgres": 5432, "mariadb": 3306, "mysql": 3306, "redis": 6379, "memcached": 11211}
FORWARD_TIMEOUT = 30  # seconds for kubectl port-forward to listen


@dataclass
class Login:
    """How the client logs in: everything but the address."""

    engine: str
    user: str | None = None
    database: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # verify the server's certificate against it (None: encrypt only)


@dataclass
class Plan:
    pod: str
    remote_port: int
    login: Login
    notes: list[str] = field(default_factory=list)


def _conninfo_value(value: str) -> str:
    """A libpq connection-string value, quoted when it must be."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def client_command(login: Login, port: int, command: str | None = None,
                   extra: list[str] | None = None) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """The client's argv and the environment variables it gets on top of ours (the password's)."""
    extra = list(extra or [])
    env = {PASSWORD_VARIABLE[login.engine]: login.password} if login.password else {}
    if login.engine == "postgres":
        parts = {"host": "127.0.0.1", "port": str(port), "user": login.user, "dbname": login.database}
        if login.tls:
            parts |= {"sslmode": "verify-ca", "sslrootcert": login.ca_file} if login.ca_file else {"sslmode": "require"}
        conninfo = " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items() if v)
        argv = ["psql", conninfo, *extra]
        if command is not None:
            argv += ["-X", "-v", "ON_ERROR_STOP=1", "-c", command]
        return argv, env
    if login.engine in ("mariadb", "mysql"):
        argv = [CLIENT_PROGRAM[login.engine], "--host=127.0.0.1", f"--port={port}"]
        argv += [f"--user={login.user}"] if login.user else []
        if login.tls:
            argv += [f"--ssl-ca={login.ca_file}"] if login.ca_file else ["--ssl"]
        argv += [*extra, *([login.database] if login.database else [])]
        if command is not None:
            argv += ["--batch", "-e", command]
        return argv, env
    if login.engine == "redis":
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        if login.tls:
            argv += ["--tls", *(["--cacert", login.ca_file] if login.ca_file else ["--insecure"])]
        argv += extra
        if command is not None:
            argv += shlex.split(command)
        return argv, env
    raise PluginError(f"no shell client for engine {login.engine}")


def memcached_help(client: Client, obj: dict, pod: str | None) -> str:
    name, port = name_of(obj), spec(obj).get("port") or DEFAULT_PORT["memcached"]
    target = f"pod/{pod}" if pod else f"svc/{name}"
    flags = " ".join(client.target.kubectl_flags(client.namespace))
    return (f"Memcached has no shell client: it speaks a plain text protocol. Reach it through a port-forward:\n"
            f"  kubectl {flags} port-forward {target} {port}:{port}\n"
            f"then, in another terminal:\n"
            f"  printf 'stats\\r\\nquit\\r\\n' | nc 127.0.0.1 {port}\n"
            f"Clients in the cluster use {status(obj).get('endpoint') or name}, which also answers Auto Discovery "
            f"(config get cluster).")  # fmt: skip


def choose_member(client: Client, info: KindInfo, obj: dict, member: str | None, reader: bool) -> dict:
    """The pod to connect to: the one asked for, a ready replica (--reader), or the primary."""
    name = name_of(obj)
    pods = {p["metadata"]["name"]: p for p in client.pods(pod_selector(info, name))}
    if member:
        if member not in pods:
            raise PluginError(f"{member} is not a pod of {info.kind} {name} (its pods: {', '.join(pods) or 'none'})")
        return pods[member]
    if reader:
        readers = [m["name"] for m in members_of(obj) if m.get("ready") and m.get("name") in pods
                   and (info is READREPLICA or not is_primary_role(m.get("role")))]  # fmt: skip
        if not readers:
            raise PluginError(f"{info.kind} {name} has no ready replica to read from")
        return pods[readers[0]]
    primary = primary_of(obj)
    if primary is None and info is CACHECLUSTER and len(pods) == 1:
        primary = next(iter(pods))
    if primary is None:
        raise PluginError(f"{info.kind} {name} has no primary in its status yet (phase "
                          f"{status(obj).get('phase') or 'unknown'}): give --member POD")  # fmt: skip
    if primary not in pods:
        raise PluginError(f"the primary {primary} of {info.kind} {name} has no pod now: give --member POD")
    return pods[primary]


def _port(pod: dict, names: tuple[str, ...], default: int) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") in names:
                return int(port["containerPort"])
    return default


def plan(client: Client, info: KindInfo, obj: dict, member: str | None, reader: bool) -> Plan:
    engine = engine_of(obj) or "postgres"
    pod = choose_member(client, info, obj, member, reader)
    s, st = spec(obj), status(obj)
    if engine == "redis":
        tls = bool(st.get("tlsPort"))
        # TLS on a port of its own (named "tls") beside plain TCP, or on the port itself with require.
        remote = _port(pod, ("tls",), 0) if tls else 0
        remote = remote or _port(pod, (engine,), s.get("port") or DEFAULT_PORT[engine])
        secret = st.get("authSecretName") or (s.get("auth") or {}).get("secretName")
        certificate = ((s.get("tls") or {}).get("certificateSecretName") or f"{name_of(obj)}-tls") if tls else None
        login = Login(engine, password=client.secret_value(secret, "password") if secret else None, tls=tls)
    else:
        remote = _port(pod, (engine,), s.get("port") or DEFAULT_PORT.get(engine, 5432))
        source = st.get("source") or {}
        secret = st.get("masterUserSecretName") or s.get("masterUserSecretName") or f"{name_of(obj)}-master"
        user = client.secret_value(secret, "username") or s.get("masterUsername") or source.get("masterUsername")
        database = s.get("databaseName") or source.get("databaseName") or "app"
        certificate = st.get("certificateSecretName")
        login = Login(engine, user or "dbadmin", database, client.secret_value(secret, "password"), bool(certificate))
    notes = []
    if certificate:
        login.ca_file = client.secret_value(certificate, "ca.crt")  # the PEM for now: written to a file later
        if not login.ca_file:
            notes.append(f"Secret {certificate} has no ca.crt: the connection is encrypted, the server not verified")
    return Plan(pod["metadata"]["name"], remote, login, notes)


class PortForward:
    """`kubectl port-forward` to one pod, on a local port kubectl picks (and says)."""

    def __init__(self, client: Client, pod: str, remote: int, kubectl: str, local: int | None = None):
        flags = client.target.kubectl_flags(client.namespace)
        self.argv = [kubectl, *flags, "port-forward", "--address=127.0.0.1", f"pod/{pod}", f"{local or ''}:{remote}"]
        self.local: int | None = None
        self.errors: list[str] = []
        self._ready = threading.Event()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PortForward:
        try:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        except FileNotFoundError:
            raise PluginError(f"{self.argv[0]} not found: kubectl runs the port-forward (set KUBECTL to its path)") \
                from None  # fmt: skip
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        if not self._ready.wait(FORWARD_TIMEOUT) or self.local is None:
            self.close()
            said = " ".join(self.errors).strip() or f"no answer in {FORWARD_TIMEOUT}s"
            raise PluginError(f"kubectl port-forward failed: {said}")
        return self

    def _read_out(self) -> None:
        for line in self.process.stdout:  # "Forwarding from 127.0.0.1:40123 -> 5432"
            if line.startswith("Forwarding from 127.0.0.1:") and self.local is None:
                self.local = int(line.split("127.0.0.1:", 1)[1].split()[0])
                self._ready.set()
        self._ready.set()  # it ended

    def _read_err(self) -> None:
        for line in self.process.stderr:
            self.errors.append(line.strip())

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __exit__(self, *exc) -> None:
        self.close()


def run(client: Client, info: KindInfo, obj: dict, member: str | None, reader: bool, command: str | None,
        extra: list[str], local_port: int | None = None, out: TextIO = sys.stdout,
        err: TextIO = sys.stderr) -> int:  # fmt: skip
    engine = engine_of(obj)
    if engine == "memcached":
        print(memcached_help(client, obj, member), file=out)
        return 0
    the_plan = plan(client, info, obj, member, reader)
    program = CLIENT_PROGRAM[engine]
    if shutil.which(program) is None:
        raise PluginError(f"{program} not found on PATH: install it (Debian: {INSTALL_HINT[program]})")
    for note in the_plan.notes:
        print(f"note: {note}", file=err)
    kubectl = os.environ.get("KUBECTL") or "kubectl"
    with tempfile.TemporaryDirectory(prefix="kubectl-kuberds-") as scratch:
        if the_plan.login.ca_file:
            ca = Path(scratch) / "ca.crt"
            ca.write_text(the_plan.login.ca_file)
            ca.chmod(0o600)
            the_plan.login.ca_file = str(ca)
        with PortForward(client, the_plan.pod, the_plan.remote_port, kubectl, local_port) as forward:
            argv, env = client_command(the_plan.login, forward.local, command, extra)
            print(f"connecting to {the_plan.pod} (port {the_plan.remote_port}) through 127.0.0.1:{forward.local}",
                  file=err)  # fmt: skip
            return _client(argv, {**os.environ, **env}, interactive=command is None, out=out, err=err)


def _client(argv: list[str], env: dict[str, str], interactive: bool, out: TextIO, err: TextIO) -> int:
    if interactive:  # the terminal is the client's; Ctrl-C is for it, not for us
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.run(argv, env=env, check=False, preexec_fn=_default_interrupt).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
    result = subprocess.run(argv, env=env, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    out.write(result.stdout)
    err.write(result.stderr)
    return result.returncode


def _default_interrupt() -> None:
    """In the client, before it runs: Ctrl-C as usual (an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
