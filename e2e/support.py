"""The e2e suite's view of a cluster: kubectl, DBInstances, and the client pod it execs into.

Everything goes through Kubernetes (the API, `kubectl exec` into the client pod); nothing
here reaches a database pod directly, so the suite runs the same against kind or k3d.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml
from hack.localcluster.layout import default_layout
from tests.support.kube import Cluster, wait_for

from e2e.manifests import CLIENT

# Servers and snapshots are usually Available within a minute here; a slower one prints why.
SLOW_SECONDS = 60

NODE_COLUMNS = (
    "custom-columns=NODE:.metadata.name,TRUE_CONDITIONS:.status.conditions[?(@.status=='True')].type,"
    "TAINTS:.spec.taints[*].key"
)
GROUP, VERSION = "kuberds.io", "v1alpha1"
OPERATOR_NAMESPACE, RELEASE = "kuberds-system", "kuberds"


@dataclass
class E2E:
    cluster: Cluster
    namespace: str
    figures: dict[str, str] = field(default_factory=dict)
    ca_written: dict[str, str] = field(default_factory=dict)  # instance → CA copied into the client pod

    def record(self, name: str, value: object) -> None:
        """A measured figure, printed at once and again at the end of the session."""
        self.figures[name] = value if isinstance(value, str) else json.dumps(value)
        print(f"\n    {name}: {self.figures[name]}")

    # ------------------------------------------------------------ kubectl

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        return self.cluster.kubectl(*args, input=input, check=check, timeout=timeout)

    def apply(self, *objects: dict) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(objects))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        result = self.kubectl("get", kind, name, "-n", namespace or self.namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def items(self, kind: str, selector: str = "", namespace: str | None = None) -> list[dict]:
        args = ["get", kind, "-n", namespace or self.namespace, "-o", "json"]
        return json.loads(self.kubectl(*args, *(["-l", selector] if selector else [])).stdout)["items"]

    def patch(self, kind: str, name: str, patch: dict) -> None:
        self.kubectl("patch", kind, name, "-n", self.namespace, "--type=merge", "-p", json.dumps(patch))

    def secret_value(self, name: str, key: str) -> str:
        secret = self.get("secret", name)
        assert secret, f"secret {name} not found"
        return base64.b64decode(secret["data"][key]).decode()

    # ------------------------------------------------------------ DBInstances

    def status(self, name: str, kind: str = "dbinstance") -> dict:
        return (self.get(kind, name) or {}).get("status") or {}

    def wait_available(self, name: str, timeout: float = 600, kind: str = "dbinstance") -> dict:
        def available() -> dict | None:
            status = self.status(name, kind)
            return status if status.get("phase") == "Available" else None

        started = time.monotonic()
        try:
            status = wait_for(available, timeout=timeout, interval=2, what=f"{kind} {name} Available")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.diagnostics(name)}") from None
        took = time.monotonic() - started
        if took > SLOW_SECONDS:  # passed, but slowly: leave what explains it in the log
            print(f"\n    {kind} {name} took {took:.0f}s to be Available (usually under {SLOW_SECONDS}s):\n"
                  f"{self.diagnostics(name)}")  # fmt: skip
        return status

    def condition(self, name: str, type_: str, kind: str = "dbinstance") -> dict:
        return next((c for c in self.status(name, kind).get("conditions", []) if c["type"] == type_), {})

    def pods(self, instance: str) -> dict[str, dict]:
        # The database pods only (the proxy's share the instance label).
        pods = self.items("pods", f"app.kubernetes.io/instance={instance},app.kubernetes.io/component=database")
        return {p["metadata"]["name"]: p for p in pods}

    def primary(self, instance: str) -> str | None:
        return self.status(instance).get("currentPrimary")

    def dsn(self, instance: str, host: str | None = None, kind: str = "dbinstance") -> str:
        """As an application in the cluster connects: the Service's DNS name, the generated
        credentials, and with TLS served, verify-full against the server's CA."""
        status = self.status(instance, kind)
        user = self.secret_value(status["masterUserSecretName"], "username")
        password = self.secret_value(status["masterUserSecretName"], "password")
        endpoint = host or status["endpoint"]
        hostname, port = endpoint.rsplit(":", 1)
        if kind == "readreplica":  # the source's database
            database = status["source"]["databaseName"]
        else:
            database = (self.get(kind, instance) or {})["spec"].get("databaseName", "app")
        dsn = f"host={hostname} port={port} user={user} password={password} dbname={database} connect_timeout=5"
        if status.get("certificateSecretName"):
            dsn += f" sslmode=verify-full sslrootcert={self.ca_file(instance, status['certificateSecretName'])}"
        return dsn

    def ca_file(self, instance: str, secret: str) -> str:
        """The server's CA certificate, copied into the client pod (again only when it changed)."""
        ca = self.secret_value(secret, "ca.crt")
        path = f"/tmp/{instance}-ca.crt"
        if self.ca_written.get(instance) != ca:
            self.exec(["sh", "-c", f"cat > {path}"], input=ca)
            self.ca_written[instance] = ca
        return path

    # ------------------------------------------------------------ the client pod

    def exec(self, command: list[str], input: str | None = None, timeout: float = 120) -> str:
        return self.kubectl("exec", "-i", "-n", self.namespace, CLIENT, "--", *command,
                            input=input, timeout=timeout).stdout  # fmt: skip

    def sql(self, instance: str, statement: str, reader: bool = False, proxy: bool = False,
            kind: str = "dbinstance", host: str | None = None) -> list[list[str]]:  # fmt: skip
        """Runs one statement through the instance's writer (or reader, or proxy, or `host`:port)
        Service from the client pod; rows as lists of text."""
        status = self.status(instance, kind)
        host = host or (status["readerEndpoint"] if reader else status["proxyEndpoint"] if proxy else None)
        dsn = self.dsn(instance, host, kind)
        out = self.exec(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-XAtF", "\t", "-c", statement])
        return [line.split("\t") for line in out.splitlines() if line]

    def writer(self, instance: str, seconds: float, table: str = "writes", proxy: bool = False,
               kind: str = "dbinstance", deadline: float | None = None) -> Writer:  # fmt: skip
        """Inserts from the client pod (e2e/writer.py); `deadline`: seconds each statement gets."""
        stop_file = f"/tmp/stop-{table}"
        host = self.status(instance, kind)["proxyEndpoint"] if proxy else None
        command = ["/opt/kuberds/bin/python", "/scripts/writer.py", "--dsn", self.dsn(instance, host, kind),
                   "--seconds", str(seconds), "--table", table, "--stop-file", stop_file,
                   *(["--deadline", str(deadline)] if deadline else [])]  # fmt: skip
        args = [self.cluster.kubectl_path, f"--kubeconfig={self.cluster.kubeconfig}",
                "exec", "-n", self.namespace, CLIENT, "--", *command]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Writer(process, lambda: self.exec(["touch", stop_file]))

    # ------------------------------------------------------------ when something fails

    def diagnostics(self, instance: str | None = None) -> str:
        """What an engineer would look at first: objects, events, the conditions true on the
        nodes and their taints (a full disk once kept every new pod from starting), the free
        disk of a local cluster, the operator's and the database pods' last log lines."""
        parts = []
        for args in (["get", "dbinstance,dbcluster,dbsnapshot,pods,pvc", "-n", self.namespace, "-o", "wide"],
                     ["get", "events", "-n", self.namespace, "--sort-by=.lastTimestamp"],
                     ["get", "nodes", "-o", NODE_COLUMNS],
                     ["logs", "-n", OPERATOR_NAMESPACE, f"deploy/{RELEASE}", "--tail=40"]):  # fmt: skip
            result = self.kubectl(*args, check=False)
            parts.append(f"$ kubectl {shlex.join(args)}\n{result.stdout[-6000:]}{result.stderr[-1000:]}")
        if self.cluster.local:
            disk = shutil.disk_usage(default_layout().root)
            parts.append(f"disk under the local cluster: {disk.free / 2**30:.1f} GiB free of {disk.total / 2**30:.0f}")
        if instance:
            parts.append(json.dumps(self.status(instance), indent=1)[-3000:])
            for pod in self.pods(instance):
                result = self.kubectl("logs", "-n", self.namespace, pod, "--tail=60", check=False)
                parts.append(f"$ kubectl logs {pod}\n{result.stdout[-8000:]}{result.stderr[-500:]}")
            parts.append(self.proxy_logs(instance))
        return "\n".join(parts)

    def proxy_logs(self, instance: str, tail: int = 80) -> str:
        """The proxy pods' own lines (PgBouncer names the server address of every connection
        it closes, and why), without the periodic stats lines."""
        selector = f"app.kubernetes.io/instance={instance},app.kubernetes.io/component=proxy"
        parts = []
        for pod in self.items("pods", selector):
            name = pod["metadata"]["name"]
            result = self.kubectl("logs", "-n", self.namespace, name, "--tail=2000", check=False)
            lines = [line for line in result.stdout.splitlines() if " stats: " not in line]
            parts.append(f"$ kubectl logs {name} | grep -v stats\n" + "\n".join(lines[-tail:]))
        return "\n".join(parts)


@dataclass
class Writer:
    """A writer.py run in the client pod; `result()` waits for its JSON summary."""

    process: subprocess.Popen
    stop: Callable[[], object]

    def result(self, timeout: float = 600) -> dict:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, f"writer failed ({self.process.returncode}): {err[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])
