"""The member an agent is: its identity from the downward API, and where its files and ports
are. The defaults are the engine's image layout (kuberds.contract.layouts); each can be
overridden from the environment, which is how tests run several members on one host."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kuberds.contract import CONFIG_DIR, environment
from kuberds.contract.layouts import PodLayout

# Overrides for running outside a pod (the data-plane tests).
OVERRIDES = {
    "config_dir": "KUBERDS_CONFIG_DIR",
    "data_dir": "KUBERDS_DATA_DIR",
    "run_dir": "KUBERDS_RUN_DIR",
    "bin_dir": "KUBERDS_BIN_DIR",
    "listen_address": "KUBERDS_LISTEN_ADDRESS",
    "agent_port": "KUBERDS_AGENT_PORT",
    "metrics_port": "KUBERDS_METRICS_PORT",
    "engine_port": "KUBERDS_ENGINE_PORT",
    "engine_user": "KUBERDS_ENGINE_USER",
    "kube_context": "KUBERDS_KUBE_CONTEXT",
}


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    ip: str
    config_dir: Path
    data_dir: Path
    run_dir: Path
    bin_dir: Path
    agent_port: int
    metrics_port: int
    listen_address: str = "0.0.0.0"
    engine_port: int | None = None  # the server's port (agent.json) when None
    engine_user: str | None = None  # drop to this OS user for the engine (tests run as root)
    kube_context: str | None = None  # a kubeconfig context outside a pod
    memory_limit_bytes: int | None = None  # this container's limit (downward API)

    @classmethod
    def from_environment(cls, layout: PodLayout, env: Mapping[str, str] | None = None) -> Pod:
        env = dict(os.environ if env is None else env)

        def given(field: str) -> str | None:
            return env.get(OVERRIDES[field]) or None

        def path(field: str, default: str) -> Path:
            return Path(given(field) or default)

        def number(text: str | None) -> int | None:
            return int(text) if text else None

        return cls(
            name=env[environment.POD_NAME],
            namespace=env[environment.POD_NAMESPACE],
            ip=env.get(environment.POD_IP) or "127.0.0.1",
            config_dir=path("config_dir", CONFIG_DIR),
            data_dir=path("data_dir", layout.data_dir),
            run_dir=path("run_dir", layout.run_dir),
            bin_dir=path("bin_dir", layout.bin_dir),
            agent_port=number(given("agent_port")) or layout.agent_port,
            metrics_port=number(given("metrics_port")) or layout.metrics_port,
            listen_address=given("listen_address") or "0.0.0.0",
            engine_port=number(given("engine_port")),
            engine_user=given("engine_user"),
            kube_context=given("kube_context"),
            memory_limit_bytes=number(env.get(environment.MEMORY_LIMIT)),
        )
