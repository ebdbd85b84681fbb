"""What the data-plane harnesses of the agents that decide over a Lease (Redis, MariaDB) share:
a member on this host (its ports, its work directory, its agent's process tree), the agent
started as a pod would start it (the environment a pod gets, the peers named by address),
kill -9 and signals of the whole member, and the role labels a Service would select on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import psutil

from kuberds.contract import ROLE_LABEL
from kuberds.contract.report import AgentReport
from tests.support.kube import ROOT, free_port


@dataclass
class LocalMember:
    ordinal: int
    name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "agent.log"


class LocalMembers:
    """Members of one server on this host; the harness sets `members`, `namespace`, `core`
    and `kubeconfig`."""

    members: list[LocalMember]
    namespace: str
    core: kubernetes.client.CoreV1Api
    kubeconfig: Path

    def pod_env(self, member: LocalMember, engine_user: str, peers_env: str) -> dict[str, str]:
        """The environment a member's pod gets, with this host's paths and ports (secrets apart)."""
        return {
            "PATH": os.environ["PATH"],
            "POD_NAME": member.name,
            "POD_NAMESPACE": self.namespace,
            "POD_IP": "127.0.0.1",
            "KUBECONFIG": str(self.kubeconfig),
            "KUBERDS_CONFIG_DIR": str(member.workdir / "config"),
            "KUBERDS_RUN_DIR": str(member.workdir / "run"),
            "KUBERDS_DATA_DIR": str(member.workdir / "data"),
            "KUBERDS_LISTEN_ADDRESS": "127.0.0.1",
            "KUBERDS_ENGINE_PORT": str(member.port),
            "KUBERDS_AGENT_PORT": str(member.agent_port),
            "KUBERDS_METRICS_PORT": str(member.metrics_port),
            "KUBERDS_ENGINE_USER": engine_user,
            peers_env: ",".join(f"{m.name}=127.0.0.1:{m.port}" for m in self.members),
            "PYTHONPATH": str(ROOT / "operator"),
        }

    def run_agent(self, member: LocalMember, engine: str, env: dict[str, str]) -> None:
        member.process = subprocess.Popen([sys.executable, "-m", "kuberds", "agent", engine], env=env,
                                          stdout=member.log.open("ab"), stderr=subprocess.STDOUT,
                                          start_new_session=True)  # fmt: skip

    def processes(self, member: LocalMember) -> list[psutil.Process]:
        if member.process is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(member.process.pid)
            return [parent, *parent.children(recursive=True)]
        return []

    def kill(self, member: LocalMember) -> None:
        """kill -9 of the whole member (its agent and its engine): a pod lost at once."""
        self.signal(member, signal.SIGKILL)
        if member.process is not None:
            member.process.wait(timeout=20)
        member.process = None

    def signal(self, member: LocalMember, sig: signal.Signals) -> None:
        for process in self.processes(member):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)

    def report(self, member: LocalMember) -> AgentReport:
        """What the member's agent last reported on its pod (empty before its first report)."""
        pod = self.core.read_namespaced_pod(member.name, self.namespace)
        return AgentReport.from_pod({"metadata": {"annotations": pod.metadata.annotations or {}}})

    def labelled_primary(self) -> LocalMember | None:
        """The member the primary (writer) endpoint selects now: the one pod labelled primary."""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{ROLE_LABEL}=primary").items
        names = {p.metadata.name for p in pods}
        chosen = [m for m in self.members if m.name in names]
        return chosen[0] if len(chosen) == 1 else None

    def logs(self) -> str:
        return "\n".join(f"--- {m.name}\n{m.log.read_text()[-4000:]}" for m in self.members if m.log.exists())
