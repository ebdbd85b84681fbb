"""Benchmark: N DBInstances on kwok nodes, reconciled by one operator process.

    python bench/operator_scale.py [--count 500] [--kubeconfig PATH]
    make bench [COUNT=500]

Needs a cluster with kwok nodes only and no other kuberds operator (it refuses others);
installs the CRDs from crds/ itself, and first removes what an interrupted run left (its
namespace and extra nodes), so it can run on a fresh cluster and again.

Prints, for the operator as a real process against the real API server:
- reaction: time from create to status.phase set, and to phase Available (pods Running on
  kwok), p50/p90/p99/max;
- operator RSS (peak and at the end) while it holds N instances;
- API requests per reconcile and per instance (the operator's own counter).
Figures only; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import percentile  # noqa: E402
from hack.localcluster.controlplane import kwok_node  # noqa: E402
from hack.localcluster.layout import ZONES, default_layout  # noqa: E402
from tests.support.kube import OPERATOR_SELECTOR, free_port, local_kubectl, wait_for  # noqa: E402

GROUP, VERSION, PLURAL = "kuberds.io", "v1alpha1", "dbinstances"
NAMESPACE = "bench-operator"
STEADY = 20


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (
        f"{name}: n={len(values)} p50={percentile(values, 50) * 1000:.0f} ms "
        f"p90={percentile(values, 90) * 1000:.0f} ms "
        f"p99={percentile(values, 99) * 1000:.0f} ms max={max(values) * 1000:.0f} ms "
        f"mean={statistics.fmean(values) * 1000:.0f} ms"
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric_sum(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def kubectl(kubeconfig: str, *args: str) -> None:
    result = subprocess.run([local_kubectl(), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")


def install_crds(kubeconfig: str) -> None:
    """The CRDs of this checkout (the README's upgrade step: whoever installed them first)."""
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl(kubeconfig, "wait", "crd", "-l", "app.kubernetes.io/part-of=kuberds", "--for=condition=Established",
            "--timeout=60s")  # fmt: skip


def refuse_shared_cluster(api: kubernetes.client.ApiClient) -> None:
    """The figures are one operator's, on kwok nodes: not beside real nodes (500 servers
    would really start there) or another operator (two would fight over every object)."""
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    if core.list_node(label_selector="kuberds.io/node-type=real").items:
        raise SystemExit("this cluster has real nodes (make up): `make cluster-down`, then `make bench` again")
    for deployment in apps.list_deployment_for_all_namespaces(label_selector=OPERATOR_SELECTOR).items:
        if deployment.spec.replicas:
            where = f"{deployment.metadata.namespace}/{deployment.metadata.name}"
            raise SystemExit(f"a kuberds operator already runs in this cluster ({where}): uninstall it first")


def remove_leftovers(core: kubernetes.client.CoreV1Api, objects: kubernetes.client.CustomObjectsApi) -> None:
    """The namespace and extra nodes of this benchmark, from this run or an interrupted one."""
    for item in objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]:
        if item["metadata"].get("finalizers"):  # no operator runs now to release them
            objects.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, item["metadata"]["name"],
                                                   {"metadata": {"finalizers": None}})  # fmt: skip
    # The namespace first: its pods leave with it while kwok still serves their nodes
    # (a pod on a deleted node waits for the pod garbage collector instead).
    found = any(n.metadata.name == NAMESPACE for n in core.list_namespace().items)
    if found:
        with contextlib.suppress(kubernetes.client.ApiException):
            core.delete_namespace(NAMESPACE)

        def gone() -> bool:
            return not any(n.metadata.name == NAMESPACE for n in core.list_namespace().items)

        wait_for(gone, timeout=300, interval=1, what=f"namespace {NAMESPACE} deleted")
    names = [n.metadata.name for n in core.list_node().items if n.metadata.name.startswith("kwok-bench-")]
    for name in names:
        core.delete_node(name)
    if found or names:
        print(f"    removed namespace {NAMESPACE} and {len(names)} bench nodes", flush=True)


def add_capacity(core: kubernetes.client.CoreV1Api, nodes: int) -> list[str]:
    """Extra kwok nodes so every instance's pod can be placed (3 zones, realistic sizes)."""
    names = []
    for i in range(nodes):
        node = kwok_node(ZONES[i % 3], 10 + i)
        name = f"kwok-bench-{i}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        node["status"]["addresses"][1]["address"] = name
        core.create_node(node)
        names.append(name)
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--kubeconfig", default=str(default_layout().kubeconfig))
    parser.add_argument("--extra-nodes", type=int, default=8)
    args = parser.parse_args()

    api = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    core, objects = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
    refuse_shared_cluster(api)
    print(f"==> CRDs from {ROOT / 'crds'}; {NAMESPACE} and {args.extra_nodes} extra kwok nodes", flush=True)
    install_crds(args.kubeconfig)
    remove_leftovers(core, objects)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    add_capacity(core, args.extra_nodes)
    try:
        return run(args, objects)
    finally:
        print("==> cleaning up (namespace and bench nodes)", flush=True)
        remove_leftovers(core, objects)


def run(args: argparse.Namespace, objects: kubernetes.client.CustomObjectsApi) -> int:
    """The operator started, N creates at once, then creates and changes one a second."""
    log = Path(tempfile.mkdtemp(prefix="kuberds-bench-")) / "operator.log"
    metrics_port, health_port = free_port(), free_port()
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kuberds",
            "operator",
            f"--metrics-port={metrics_port}",
            f"--health-port={health_port}",
        ],
        env={**os.environ, "KUBECONFIG": args.kubeconfig},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    created: dict[str, float] = {}
    phased: dict[str, float] = {}
    available: dict[str, float] = {}
    changes: dict[str, tuple[float, int]] = {}
    reconciled: dict[str, float] = {}
    peak_rss = [0.0]
    done = threading.Event()

    def watch() -> None:
        stream = kubernetes.watch.Watch()
        for event in stream.stream(objects.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL,
                                   timeout_seconds=900):  # fmt: skip
            obj = event["object"]
            name, phase = obj["metadata"]["name"], (obj.get("status") or {}).get("phase")
            now = time.monotonic()
            if phase and name not in phased:
                phased[name] = now
            if phase == "Available" and name not in available:
                available[name] = now
            if (
                name in changes
                and name not in reconciled
                and (obj.get("status") or {}).get("observedGeneration") == changes[name][1]
            ):
                reconciled[name] = now
            if done.is_set():
                stream.stop()

    def sample_rss() -> None:
        while not done.is_set() and operator.poll() is None:
            peak_rss[0] = max(peak_rss[0], rss_mib(operator.pid))
            time.sleep(0.5)

    try:
        time.sleep(3)  # operator start-up (imports, initial listing)
        if operator.poll() is not None:
            raise SystemExit(f"the operator exited at start-up; see {log}")
        idle_rss = rss_mib(operator.pid)
        threading.Thread(target=watch, daemon=True).start()
        threading.Thread(target=sample_rss, daemon=True).start()
        print(f"==> creating {args.count} DBInstances in {NAMESPACE} (operator RSS idle {idle_rss:.0f} MiB)")
        began = time.monotonic()
        for i in range(args.count):
            name = f"db-{i:04d}"
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBInstance", "metadata": {"name": name},
                    "spec": {"engine": "postgres", "skipFinalSnapshot": True}}  # fmt: skip
            created[name] = time.monotonic()
            objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            if (i + 1) % 100 == 0:
                print(f"    created {i + 1} in {time.monotonic() - began:.1f}s; phase set on {len(phased)}, "
                      f"Available {len(available)}", flush=True)  # fmt: skip
        deadline = time.monotonic() + 420
        while len(available) < args.count and time.monotonic() < deadline:
            time.sleep(5)
            print(f"    {time.monotonic() - began:.0f}s: phase set on {len(phased)}, Available {len(available)}, "
                  f"operator RSS {rss_mib(operator.pid):.0f} MiB", flush=True)  # fmt: skip
        total = time.monotonic() - began
        # Steady state: with all N held, how fast does one more create or change show?
        print(f"==> steady state: {STEADY} creates and {STEADY} spec changes, one a second", flush=True)
        for i in range(STEADY):
            name = f"late-{i:02d}"
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBInstance", "metadata": {"name": name},
                    "spec": {"engine": "postgres", "skipFinalSnapshot": True}}  # fmt: skip
            created[name] = time.monotonic()
            objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            time.sleep(1)
        for i in range(STEADY):
            name = f"db-{i:04d}"
            changed_at = time.monotonic()
            change = {"spec": {"parameters": {"work_mem": f"{8 + i}MB"}}}
            patched = objects.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, change)
            changes[name] = (changed_at, patched["metadata"]["generation"])
            time.sleep(1)
        time.sleep(5)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        end_rss = rss_mib(operator.pid)
    finally:
        done.set()
        operator.terminate()
        operator.wait(timeout=30)

    requests = metric_sum(metrics, "kuberds_api_requests_total")
    reconciles = metric_sum(metrics, "kuberds_reconcile_total")
    result = {
        "instances": args.count,
        "seconds_until_all_available": round(total, 1),
        "phase_set": summary(
            "burst: create → status.phase set",
            [phased[n] - created[n] for n in phased if n in created and not n.startswith("late")],
        ),
        "available": summary(
            "burst: create → Available",
            [available[n] - created[n] for n in available if n in created and not n.startswith("late")],
        ),
        "steady_create": summary(
            "steady: create → status.phase set",
            [phased[n] - created[n] for n in phased if n.startswith("late")],
        ),
        "steady_change": summary(
            "steady: spec change → status.observedGeneration",
            [reconciled[n] - changes[n][0] for n in reconciled],
        ),
        "operator_rss_mib": {"idle": round(idle_rss), "peak": round(peak_rss[0]), "end": round(end_rss)},
        "api_requests": int(requests),
        "handler_runs": int(reconciles),
        "api_requests_per_handler_run": round(requests / max(reconciles, 1), 2),
        "api_requests_per_instance": round(requests / args.count, 1),
    }
    print("\n==> results")
    for key, value in result.items():
        print(f"    {key}: {value}" if not isinstance(value, str) else f"    {value}")
    print(json.dumps(result))
    print(f"    operator log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
