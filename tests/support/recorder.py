"""Records every distinct state the kuberds objects of a test run pass through, as YAML files:
where the Argo CD health checks' fixtures come from (charts/kuberds/argocd/tests). Opt-in:
KUBERDS_RECORD_OBJECTS=DIR on a cluster or e2e run.

A state is what a health check reads: the conditions' types, statuses and reasons, whether the
status is of the current generation, and whether the object is being deleted. The first object
seen in each state is kept, stripped of what says nothing to a health check.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import yaml

from tests.support.kube import Cluster

KINDS = {"dbinstances": "DBInstance", "dbclusters": "DBCluster", "readreplicas": "ReadReplica",
         "cacheclusters": "CacheCluster", "dbsnapshots": "DBSnapshot"}  # fmt: skip
# Bookkeeping the health checks never read, and that would churn in every fixture.
DROPPED_METADATA = ("managedFields", "resourceVersion", "uid", "selfLink")
DROPPED_ANNOTATIONS = ("kuberds.io/last-handled-configuration", "kubectl.kubernetes.io/last-applied-configuration")
log = logging.getLogger(__name__)


def state_of(obj: dict) -> tuple:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    conditions = sorted((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or [])
    current = status.get("observedGeneration") == meta.get("generation")
    return (obj.get("kind"), bool(meta.get("deletionTimestamp")), current, tuple(conditions))


def stripped(obj: dict) -> dict:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in DROPPED_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in DROPPED_ANNOTATIONS and not k.startswith("kuberds.io/reconcile")}  # fmt: skip
    meta["annotations"] = annotations
    if not annotations:
        del meta["annotations"]
    return {**obj, "metadata": meta}


class Recorder:
    def __init__(self, cluster: Cluster, directory: Path):
        self.cluster, self.directory = cluster, directory
        self.seen: set[tuple] = set()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._watch, args=(p,), daemon=True) for p in KINDS]

    def _watch(self, plural: str) -> None:
        api = kubernetes.client.CustomObjectsApi(self.cluster.client())
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(api.list_cluster_custom_object, "kuberds.io", "v1alpha1", plural,
                                          timeout_seconds=30):  # fmt: skip
                    self.keep(event["object"])
                    if self.stop.is_set():
                        break
            except Exception as error:  # the CRDs not installed yet, the cluster restarting
                log.debug("recording %s: %s", plural, error)
                self.stop.wait(2)

    def keep(self, obj: dict) -> None:
        state = state_of(obj)
        if state in self.seen:
            return
        self.seen.add(state)
        digest = hashlib.sha256(repr(state).encode()).hexdigest()[:10]
        name = f"{obj.get('kind')}-{obj['metadata'].get('name')}-{digest}.yaml"
        (self.directory / name).write_text(yaml.safe_dump(stripped(obj), sort_keys=False))


@contextlib.contextmanager
def recording(cluster: Cluster) -> Iterator[Recorder | None]:
    """Records while the block runs when KUBERDS_RECORD_OBJECTS names a directory."""
    directory = os.environ.get("KUBERDS_RECORD_OBJECTS")
    if not directory:
        yield None
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    recorder = Recorder(cluster, Path(directory))
    for thread in recorder.threads:
        thread.start()
    try:
        yield recorder
    finally:
        recorder.stop.set()
