#!/usr/bin/env python3
"""A real local Kubernetes control plane for kuberds' tests and demos.

    python3 hack/cluster.py up       # build (cached) and start, wait until healthy
    python3 hack/cluster.py status   # what runs, where the logs and kubeconfig are
    python3 hack/cluster.py down     # stop what `up` started, remove the state

Runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as local
processes from the binaries hack/build-binaries.sh builds, and registers three kwok nodes,
one per zone (zone-a/b/c). Everything lives in one state directory
(KUBERDS_CLUSTER_DIR, default ~/.cache/kuberds/cluster); the admin kubeconfig is
<state>/kubeconfig. Only the standard library and the openssl command are used, so it runs
with the system python3 before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field, fields
from pathlib import Path

HACK = Path(__file__).resolve().parent
POD_CIDR = "198.18.0.0/16"
SERVICE_CIDR = "198.19.0.0/16"
KUBERNETES_SERVICE_IP = "198.19.0.1"
ZONES = ("zone-a", "zone-b", "zone-c")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# A realistic mid-size worker: what the scheduler and topology spread see.
KWOK_NODE_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files and which ports it listens on."""

    root: Path
    apiserver_port: int = 6443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    kwok_port: int = 10247
    advertise_address: str = "127.0.0.1"

    pki = property(lambda self: self.root / "pki")
    logs = property(lambda self: self.root / "logs")
    pids = property(lambda self: self.root / "pids")
    etcd_data = property(lambda self: self.root / "etcd")
    kubeconfig = property(lambda self: self.root / "kubeconfig")
    server = property(lambda self: f"https://127.0.0.1:{self.apiserver_port}")

    @staticmethod
    def default_ports() -> dict[str, int]:
        return {f.name: f.default for f in fields(Layout) if f.name.endswith("_port")}

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"


@dataclass(frozen=True)
class Identity:
    """A client certificate: Kubernetes reads the user from CN and groups from O."""

    name: str
    common_name: str
    groups: tuple[str, ...] = ()


IDENTITIES = (
    Identity("admin", "kuberds-admin", ("system:masters",)),
    Identity("kube-controller-manager", "system:kube-controller-manager"),
    Identity("kube-scheduler", "system:kube-scheduler"),
    # kwok stands in for the kubelets of its nodes and needs their broad rights.
    Identity("kwok", "kwok-controller", ("system:masters",)),
)


# ---------------------------------------------------------------- pure builders


def kubeconfig(layout: Layout, identity: str) -> dict:
    """A kubeconfig for one identity, with certificates embedded so it can be copied."""

    def b64(name: str) -> str:
        return base64.b64encode((layout.pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kuberds-local",
                "cluster": {"server": layout.server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": identity,
                "user": {
                    "client-certificate-data": b64(f"{identity}.crt"),
                    "client-key-data": b64(f"{identity}.key"),
                },
            }
        ],
        "contexts": [{"name": "kuberds-local", "context": {"cluster": "kuberds-local", "user": identity}}],
        "current-context": "kuberds-local",
    }


def kwok_node(zone: str, index: int) -> dict:
    name = f"kwok-{zone}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": "local",
        "topology.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": "kwok.16x64",
        "type": "kwok",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {KWOK_NODE_ANNOTATION: "fake"}},
        "status": {
            "capacity": KWOK_NODE_CAPACITY,
            "allocatable": KWOK_NODE_CAPACITY,
            "addresses": [
                # Nodes sit in the pod range's last /24s, away from any real network.
                {"type": "InternalIP", "address": f"198.18.255.{index + 1}"},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def etcd_command(bin_dir: Path, layout: Layout) -> list[str]:
    client = f"http://127.0.0.1:{layout.etcd_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    return [
        str(bin_dir / "etcd"),
        "--name=kuberds-local",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kuberds-local={peer}",
        "--listen-metrics-urls=",
        # A throw-away test cluster: durability across a host crash is not wanted,
        # and fsync on every write makes the 500-object benchmark measure the disk.
        "--unsafe-no-fsync",
        "--quota-backend-bytes=8589934592",
        "--log-level=warn",
    ]


def apiserver_command(bin_dir: Path, layout: Layout) -> list[str]:
    pki = layout.pki
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{layout.etcd_port}",
        f"--secure-port={layout.apiserver_port}",
        f"--advertise-address={layout.advertise_address}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'admin.crt'}",
        f"--kubelet-client-key={pki / 'admin.key'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'service-account.pub'}",
        f"--service-account-signing-key-file={pki / 'service-account.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def _serving_flags(layout: Layout, component: str, port: int) -> list[str]:
    """A control-plane component's own identity, and its health endpoint on loopback."""
    kc = layout.component_kubeconfig(component)
    return [
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
    ]


def controller_manager_command(bin_dir: Path, layout: Layout) -> list[str]:
    pki = layout.pki
    component = "kube-controller-manager"
    return [
        str(bin_dir / component),
        f"--kubeconfig={layout.component_kubeconfig(component)}",
        *_serving_flags(layout, component, layout.controller_manager_port),
        f"--service-account-private-key-file={pki / 'service-account.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials",
        "--leader-elect=false",
        "--allocate-node-cidrs",
        f"--cluster-cidr={POD_CIDR}",
        "--node-cidr-mask-size=24",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--v=1",
    ]


def scheduler_config(layout: Layout) -> dict:
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(layout.component_kubeconfig("kube-scheduler"))},
        "leaderElection": {"leaderElect": False},
    }


def scheduler_command(bin_dir: Path, layout: Layout) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        f"--config={layout.root / 'kube-scheduler.yaml'}",
        *_serving_flags(layout, "kube-scheduler", layout.scheduler_port),
        "--v=1",
    ]


def kwok_command(bin_dir: Path, layout: Layout) -> list[str]:
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={HACK / 'kwok-stages.yaml'}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--cidr={POD_CIDR}",
        f"--server-address=127.0.0.1:{layout.kwok_port}",
    ]


@dataclass
class Component:
    name: str
    command: list[str]
    health: str | None  # an https/http URL answering 200 when healthy
    started_at: float = field(default=0.0)


def components(bin_dir: Path, layout: Layout) -> list[Component]:
    """The processes in start order (stopped in reverse)."""
    return [
        Component("etcd", etcd_command(bin_dir, layout), f"http://127.0.0.1:{layout.etcd_port}/health"),
        Component("kube-apiserver", apiserver_command(bin_dir, layout), f"{layout.server}/readyz"),
        Component(
            "kube-controller-manager",
            controller_manager_command(bin_dir, layout),
            f"https://127.0.0.1:{layout.controller_manager_port}/healthz",
        ),
        Component(
            "kube-scheduler",
            scheduler_command(bin_dir, layout),
            f"https://127.0.0.1:{layout.scheduler_port}/healthz",
        ),
        Component("kwok", kwok_command(bin_dir, layout), f"http://127.0.0.1:{layout.kwok_port}/healthz"),
    ]


# ---------------------------------------------------------------- certificates


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue_certificate(pki: Path, name: str, subject: str, extensions: str) -> None:
    """A P-256 key and a certificate signed by the cluster CA."""
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=pki) as ext:
        ext.write(extensions)
        ext.flush()
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / f"{name}.key"))
        openssl(
            "req", "-new", "-key", str(pki / f"{name}.key"), "-subj", subject,
            "-out", str(pki / f"{name}.csr"),
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
            "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "365",
            "-extfile", ext.name, "-out", str(pki / f"{name}.crt"),
        )  # fmt: skip
    (pki / f"{name}.csr").unlink()


def subject_of(identity: Identity) -> str:
    return "".join(f"/O={group}" for group in identity.groups) + f"/CN={identity.common_name}"


def make_pki(layout: Layout) -> None:
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pki / "ca.key"))
    openssl(
        "req", "-x509", "-new", "-key", str(pki / "ca.key"), "-subj", "/CN=kuberds-local-ca",
        "-days", "3650", "-out", str(pki / "ca.crt"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    names = [
        "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "localhost",
    ]  # fmt: skip
    ips = sorted({"127.0.0.1", KUBERNETES_SERVICE_IP, layout.advertise_address})
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ips])
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    issue_certificate(
        pki, "apiserver", "/CN=kube-apiserver",
        leaf + f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n",
    )  # fmt: skip
    for identity in IDENTITIES:
        issue_certificate(pki, identity.name, subject_of(identity), leaf + "extendedKeyUsage=clientAuth\n")
    # Service-account tokens are signed with a key of their own (RSA: what every
    # token consumer accepts).
    openssl("genrsa", "-out", str(pki / "service-account.key"), "2048")
    openssl("rsa", "-in", str(pki / "service-account.key"), "-pubout", "-out", str(pki / "service-account.pub"))


# ---------------------------------------------------------------- processes


def pid_file(layout: Layout, name: str) -> Path:
    return layout.pids / f"{name}.pid"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live pid; a recycled pid has a different one. An exited
    one has none, even as a zombie: `down` does not wait for init to reap what `up` left."""
    try:
        state, *stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return None
    return None if state == "Z" else stat[18]


def recorded_pid(layout: Layout, name: str) -> int | None:
    """The pid `up` recorded for a component, if that very process still runs."""
    try:
        pid_text, start = pid_file(layout, name).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if process_start_time(pid) == start else None


def start(component: Component, layout: Layout) -> None:
    log = (layout.logs / f"{component.name}.log").open("ab")
    process = subprocess.Popen(
        component.command,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=layout.root,
        start_new_session=True,  # outlives `up`, and gets no terminal signals
    )
    pid_file(layout, component.name).write_text(f"{process.pid} {process_start_time(process.pid)}\n")
    component.started_at = time.monotonic()


def stop(layout: Layout, name: str, grace: float = 15.0) -> bool:
    pid = recorded_pid(layout, name)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and recorded_pid(layout, name) == pid:
        reap(pid)
        time.sleep(0.1)
    if recorded_pid(layout, name) == pid:
        os.kill(pid, signal.SIGKILL)
        while recorded_pid(layout, name) == pid:
            reap(pid)
            time.sleep(0.05)
    reap(pid)  # our own child (tests run up and down in one process) is now a zombie
    return True


def reap(pid: int) -> None:
    """Collect a child started by this very process (tests call up and down in one process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------- health


def admin_ssl_context(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def healthy(url: str, layout: Layout) -> bool:
    # Controller-manager and scheduler serve self-signed certificates on loopback.
    is_apiserver = url.startswith(layout.server)
    context = admin_ssl_context(layout) if is_apiserver else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(component: Component, layout: Layout, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_all(layout)  # an exited child stays a zombie (and looks alive) until reaped
        if recorded_pid(layout, component.name) is None:
            raise ClusterError(f"{component.name} exited during start-up", component.name, layout)
        if component.health is None or healthy(component.health, layout):
            elapsed = time.monotonic() - component.started_at
            print(f"    {component.name} healthy after {elapsed:.1f}s", flush=True)
            return
        time.sleep(0.25)
    raise ClusterError(f"{component.name} not healthy after {timeout:.0f}s", component.name, layout)


def reap_all(layout: Layout) -> None:
    for pid_path in layout.pids.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            reap(int(pid_path.read_text().split()[0]))


class ClusterError(RuntimeError):
    def __init__(self, message: str, component: str, layout: Layout):
        log = layout.logs / f"{component}.log"
        tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
        super().__init__(f"{message}; last lines of {log}:\n" + "\n".join(tail))


# ---------------------------------------------------------------- the cluster


def kubectl(bin_dir: Path, layout: Layout, *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def storage_classes() -> list[dict]:
    """kwok provisions (and, for `standard`, expands) volumes of these classes instantly
    (see kwok-stages.yaml): `standard` is the default and expandable, `fixed` is not."""

    def storage_class(name: str, expandable: bool, default: bool) -> dict:
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name, "annotations": annotations},
            "provisioner": "kwok.x-k8s.io/volume",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": expandable,
        }

    return [storage_class("standard", True, True), storage_class("fixed", False, False)]


def register_nodes(bin_dir: Path, layout: Layout) -> None:
    items = [kwok_node(z, i) for i, z in enumerate(ZONES)] + storage_classes()
    kubectl(
        bin_dir,
        layout,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )


def wait_nodes_ready(bin_dir: Path, layout: Layout, timeout: float = 60.0) -> None:
    kubectl(
        bin_dir,
        layout,
        "wait",
        "node",
        "-l",
        "type=kwok",
        "--for=condition=Ready",
        f"--timeout={int(timeout)}s",
    )


def wait_default_service_account(bin_dir: Path, layout: Layout, timeout: float = 60.0) -> None:
    """Pods cannot be created in a namespace until its `default` ServiceAccount exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kubectl(bin_dir, layout, "-n", "default", "get", "serviceaccount", "default")
            return
        except RuntimeError:
            time.sleep(0.25)
    raise RuntimeError("the default ServiceAccount never appeared (is the controller-manager running?)")


def running_components(layout: Layout) -> list[str]:
    return [p.stem for p in sorted(layout.pids.glob("*.pid")) if recorded_pid(layout, p.stem)]


def build_binaries() -> Path:
    subprocess.run(["bash", str(HACK / "build-binaries.sh")], check=True)
    out = subprocess.run(
        ["bash", str(HACK / "build-binaries.sh"), "--print-bin-dir"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def up(layout: Layout) -> int:
    running = running_components(layout)
    if running:
        print(f"kuberds local cluster already running ({', '.join(running)}); kubeconfig: {layout.kubeconfig}")
        return 0
    began = time.monotonic()
    bin_dir = build_binaries()
    if layout.root.exists():
        remove_state(layout)  # leftovers of a crashed run: start clean
    for directory in (layout.root, layout.logs, layout.pids):
        directory.mkdir(parents=True, exist_ok=True)
    print(f"==> certificates and kubeconfigs in {layout.root}", flush=True)
    make_pki(layout)
    for identity in IDENTITIES:
        path = layout.kubeconfig if identity.name == "admin" else layout.component_kubeconfig(identity.name)
        path.write_text(json.dumps(kubeconfig(layout, identity.name), indent=2))
        path.chmod(0o600)
    (layout.root / "kube-scheduler.yaml").write_text(json.dumps(scheduler_config(layout), indent=2))
    try:
        for component in components(bin_dir, layout):
            print(f"==> starting {component.name}", flush=True)
            start(component, layout)
            wait_healthy(component, layout)
        print("==> registering kwok nodes in " + ", ".join(ZONES) + " and StorageClasses", flush=True)
        register_nodes(bin_dir, layout)
        wait_nodes_ready(bin_dir, layout)
        wait_default_service_account(bin_dir, layout)
    except (ClusterError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        stop_all(layout)
        return 1
    print(f"==> cluster up in {time.monotonic() - began:.1f}s")
    print(f"    export KUBECONFIG={layout.kubeconfig}")
    return 0


def stop_all(layout: Layout) -> list[str]:
    names = [c.name for c in reversed(components(Path("/nonexistent"), layout))]
    return [name for name in names if stop(layout, name)]


def remove_state(layout: Layout) -> None:
    """Everything but the logs, which stay for a post-mortem until the next `up`."""
    for entry in layout.root.iterdir():
        if entry.name == "logs":
            for log in entry.iterdir():
                log.rename(log.with_suffix(".log.previous")) if log.suffix == ".log" else log.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def down(layout: Layout) -> int:
    stopped = stop_all(layout)
    if layout.root.exists():
        remove_state(layout)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}; state removed from {layout.root}")
    return 0


def status(layout: Layout) -> int:
    running = set(running_components(layout))
    print(f"state:      {layout.root}")
    print(f"kubeconfig: {layout.kubeconfig}")
    all_up = True
    for component in components(Path("/nonexistent"), layout):
        alive = component.name in running
        ok = alive and (component.health is None or healthy(component.health, layout))
        all_up &= ok
        state = "healthy" if ok else ("running, unhealthy" if alive else "stopped")
        print(f"  {component.name:<24} {state:<19} log: {layout.logs / (component.name + '.log')}")
    return 0 if all_up else 3


def default_layout() -> Layout:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kuberds"
    root = Path(os.environ.get("KUBERDS_CLUSTER_DIR", cache / "cluster"))
    # A second cluster beside the first (hack's own lifecycle test) shifts every port.
    offset = int(os.environ.get("KUBERDS_CLUSTER_PORT_OFFSET", "0"))
    ports = {name: value + offset for name, value in Layout.default_ports().items()}
    return Layout(root=root, advertise_address=advertise_address(), **ports)


def advertise_address() -> str:
    """The address of the default route's interface: kubelets refuse a loopback node IP."""
    try:
        out = subprocess.run(["ip", "-4", "-j", "route", "show", "default"], capture_output=True, text=True)
        dev = json.loads(out.stdout)[0]["dev"]
        out = subprocess.run(["ip", "-4", "-j", "addr", "show", "dev", dev], capture_output=True, text=True)
        return json.loads(out.stdout)[0]["addr_info"][0]["local"]
    except (OSError, ValueError, IndexError, KeyError):
        return "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    layout = default_layout()
    return {"up": up, "down": down, "status": status}[args.command](layout)


if __name__ == "__main__":
    sys.exit(main())
