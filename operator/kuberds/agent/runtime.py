"""The agent's loop, the same for every engine: every LOOP_SECONDS it has the engine's agent
reload its settings and observe, decides (kuberds.agent.decisions), has the engine perform
the steps — a step that fails backs off, and never keeps the others from running — and
publishes the engine's report on its pod.

An engine's agent package (kuberds.agent.<engine>) implements EngineAgent; the runtime
owns the loop, the back-off, the report's publishing and the process's signals.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Protocol

from kuberds.agent import report as reporting
from kuberds.agent.decisions import Backoff, Observation, Step, next_steps
from kuberds.agent.pod import Pod
from kuberds.agent.report import AgentMetrics
from kuberds.contract.report import AgentReport

log = logging.getLogger("kuberds.agent")

LOOP_SECONDS = 2.0


class EngineAgent(Protocol):
    """What an engine's agent does for the runtime."""

    metrics: AgentMetrics
    # Errors a step may raise that mean "this step failed" (it backs off), not a bug.
    failures: tuple[type[Exception], ...]

    def prepare(self) -> None:
        """Writes the engine's and its HA manager's configuration, before anything starts."""

    def start(self) -> None:
        """Starts the HA manager (which runs the engine)."""

    def exit_code(self) -> int | None:
        """The HA manager's exit status once it has stopped; None while it runs."""

    def reload(self) -> None:
        """Applies a changed agent.json or certificate (the kubelet refreshes mounts)."""

    def observe(self) -> Observation: ...

    def perform(self, step: Step) -> bool | None:
        """Does one step; False when it failed."""

    def after_steps(self, observation: Observation) -> None:
        """Work of every loop after the steps (a heartbeat)."""

    def report(self, observation: Observation, steps: list[Step]) -> AgentReport: ...

    def stop(self) -> int:
        """Stops the HA manager cleanly (it hands the primary role over); the exit status."""


class Runtime:
    def __init__(self, engine: EngineAgent, pod: Pod, kube=None, backoff: Backoff | None = None):
        self.engine, self.pod, self.kube = engine, pod, kube
        self.backoff = backoff or Backoff()
        self.stopping = False
        self.last_steps: list[Step] = []
        self.published: dict = {}

    def act(self, steps: list[Step]) -> None:
        for step in steps:
            if step.kind == "wait" or not self.backoff.ready(step.kind, time.monotonic()):
                continue
            log.info("%s", step.reason)
            try:
                failed = self.engine.perform(step) is False
            except self.engine.failures as error:
                # One step failing must not keep the others (ensure-accounts above all) from running.
                log.warning("%s failed: %s", step.kind, error)
                failed = True
            if failed:
                self.backoff.failed(step.kind, time.monotonic())
            else:
                self.backoff.succeeded(step.kind)

    def step_once(self) -> list[Step]:
        self.engine.reload()
        observation = self.engine.observe()
        steps = next_steps(observation)
        if [s.reason for s in steps] != [s.reason for s in self.last_steps]:
            for s in steps:
                log.info("decision: %s", s.reason)
        self.last_steps = steps
        try:
            self.act(steps)
            self.engine.after_steps(observation)
        except self.engine.failures as error:
            log.warning("step failed: %s", error)
        report = self.engine.report(observation, steps)
        if self.kube is not None:
            self.published = reporting.publish(self.kube, self.pod.namespace, self.pod.name, report, self.published)
        return steps

    def run(self) -> int:
        self.engine.prepare()
        self.engine.metrics.serve(self.pod.listen_address, self.pod.metrics_port)
        self.engine.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        while not self.stopping:
            code = self.engine.exit_code()
            if code is not None:
                log.error("the HA manager exited with %s", code)
                return 1
            try:
                self.step_once()
            except Exception:
                log.exception("agent loop failed; retrying")
            time.sleep(LOOP_SECONDS)
        return self.engine.stop()

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
