"""A support bundle of one server: a tar.gz with the object, everything kuberds made for it, the
events, the pods' logs (current and previous) and the status screen; Secrets by their keys
only. What the plugin may not read is said in NOTES.txt instead of failing the bundle.

Secret values never reach the bundle (kuberds.plugin.redact): Secrets are written redacted
as they are read, and every file is scrubbed, the server's own secret values included.
"""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import yaml

from kuberds.plugin import status as screen
from kuberds.plugin.client import LISTABLE, Client
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import DBSNAPSHOT, SERVICE_NAME_LABEL, KindInfo, name_of, owned_selector, spec
from kuberds.plugin.logs import containers
from kuberds.plugin.redact import Scrubber, redact_secret, scrub_object, secret_values, without_noise

LOG_LIMIT_BYTES = 20 * 2**20  # of each container's log
README = """\
A kuberds support bundle, made by `kubectl kuberds report`.

  object.yaml              the {kind} itself
  status.txt               `kubectl kuberds status` as it was when the bundle was made
  objects/KIND/NAME.yaml   what kuberds made for it (StatefulSets, Pods, Services, PVCs, ConfigMaps,
                           PodDisruptionBudgets, NetworkPolicies, EndpointSlices, Deployments) and its DBSnapshots
  secrets/NAME.yaml        its Secrets and those its spec names: keys only, every value REDACTED
  events.txt, events.yaml  the events of all of these
  logs/POD/CONTAINER.log   each container's log (CONTAINER.previous.log: before its last restart)
  NOTES.txt                what could not be read, and why

Secret values are not in this bundle: Secrets are written with their keys only, fields and
text that look like passwords, tokens or keys read REDACTED, and so does every appearance of
the server's own secret values.
"""


@dataclass
class Bundle:
    root: str
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, text: str) -> None:
        self.files[f"{self.root}/{path}"] = text

    def add_yaml(self, path: str, obj: object) -> None:
        self.add(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True))


def secret_refs(value: object, key: str = "") -> set[str]:
    """Names of Secrets a spec or status names (masterUserSecretName, credentialsSecretName, …)."""
    if isinstance(value, dict):
        return set().union(set(), *(secret_refs(v, k) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(set(), *(secret_refs(v, key) for v in value))
    return {value} if isinstance(value, str) and key.lower().endswith("secretname") else set()


class Collector:
    """Reads what the bundle holds, noting instead of failing where the user may not read."""

    def __init__(self, client: Client, info: KindInfo, obj: dict):
        self.client, self.info, self.obj = client, info, obj
        self.name = name_of(obj)
        self.notes: list[str] = []
        self.scrubber = Scrubber()

    def tolerant(self, what: str, read, default):
        try:
            return read()
        except PluginError as error:
            self.notes.append(f"{what}: {error}")
            return default

    def owned(self) -> list[dict]:
        selector = owned_selector(self.info, self.name)
        found: dict[tuple[str, str], dict] = {}

        def keep(item: dict) -> None:
            found[(item["kind"], item["metadata"]["name"])] = item

        for resource in LISTABLE:
            if resource == "secrets":
                continue
            for item in self.tolerant(resource, lambda r=resource: self.client.listing(r, selector), []):
                keep(item)
        services = sorted(i["metadata"]["name"] for i in found.values() if i["kind"] == "Service")
        if services:  # the slices Kubernetes keeps for the Services with selectors (the headless one)
            chosen = f"{SERVICE_NAME_LABEL} in ({','.join(services)})"
            resource = "endpointslices.discovery.k8s.io"
            for item in self.tolerant(resource, lambda: self.client.listing(resource, chosen), []):
                keep(item)
        if self.info.snapshot_field:
            for snapshot in self.tolerant(DBSNAPSHOT.resource, lambda: self.client.list(DBSNAPSHOT), []):
                if (spec(snapshot).get("source") or {}).get(self.info.snapshot_field) == self.name:
                    keep(snapshot)
        return [found[key] for key in sorted(found)]

    def secrets(self) -> list[dict]:
        """Redacted as they are read; their values are learnt by the scrubber only."""
        names = secret_refs(spec(self.obj)) | secret_refs(self.obj.get("status") or {})
        read: dict[str, dict] = {}
        selector = owned_selector(self.info, self.name)
        for secret in self.tolerant("secrets", lambda: self.client.listing("secrets", selector), []):
            read[secret["metadata"]["name"]] = self._keep(secret)
        for name in sorted(names - set(read)):
            secret = self.tolerant(f"Secret {name}", lambda n=name: self.client.secret(n), None)
            if secret:
                read[name] = self._keep(secret)
        return [read[n] for n in sorted(read)]

    def _keep(self, secret: dict) -> dict:
        self.scrubber.learn(secret_values(secret))
        return redact_secret(secret)

    def events(self, objects: list[dict]) -> list[dict]:
        uids = {o["metadata"].get("uid") for o in objects} - {None}
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        listed = self.tolerant("events", self.client.all_events, [])

        def ours(event: dict) -> bool:
            involved = event.get("involvedObject") or {}
            return involved.get("uid") in uids or (involved.get("kind"), involved.get("name")) in names

        return sorted(filter(ours, listed), key=screen.event_moment)

    def logs(self, pods: list[dict]) -> dict[str, str]:
        out = {}
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            for container in containers(pod):
                for previous in (False, True):
                    try:
                        text = self.client.log(pod_name, container, previous=previous, limit_bytes=LOG_LIMIT_BYTES)
                    except PluginError as error:
                        if not previous:  # no previous log is the usual case: a container that never restarted
                            self.notes.append(f"log of {pod_name}/{container}: {error}")
                        continue
                    out[f"logs/{pod_name}/{container}{'.previous' if previous else ''}.log"] = text
        return out


def collect(client: Client, info: KindInfo, obj: dict, now: datetime | None = None) -> Bundle:
    now = now or datetime.now(UTC)
    name = name_of(obj)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    bundle = Bundle(f"kuberds-report-{client.namespace}-{name}-{stamp}")
    collector = Collector(client, info, obj)
    owned = collector.owned()
    secrets = collector.secrets()
    the_object = {"apiVersion": obj.get("apiVersion"), "kind": info.kind, **obj}
    events = collector.events([the_object, *owned, *secrets])
    pods = [o for o in owned if o["kind"] == "Pod"]
    logs = collector.logs(pods)

    clean_object = scrub_object(without_noise(the_object))
    bundle.add("README.txt", README.format(kind=info.kind))
    bundle.add_yaml("object.yaml", clean_object)
    for item in owned:
        bundle.add_yaml(f"objects/{item['kind']}/{item['metadata']['name']}.yaml", scrub_object(without_noise(item)))
    for secret in secrets:
        bundle.add_yaml(f"secrets/{secret['metadata']['name']}.yaml", secret)
    clean_events = [scrub_object(without_noise(e)) for e in events]
    bundle.add_yaml("events.yaml", clean_events)
    bundle.add("events.txt", "\n".join(screen.recent_events(clean_events, now, recent=len(clean_events))) + "\n")
    server_pods = [scrub_object(p) for p in pods if (p["metadata"].get("labels") or {}).get(
        "app.kubernetes.io/component") == info.component]  # fmt: skip
    snapshots = [o for o in owned if o["kind"] == DBSNAPSHOT.kind]
    bundle.add("status.txt", screen.render(clean_object, server_pods, clean_events, snapshots, now, recent=50))
    for path, text in logs.items():
        bundle.add(path, text)
    bundle.notes = collector.notes
    bundle.add("NOTES.txt", "\n".join(collector.notes) + "\n" if collector.notes else "nothing was left out\n")
    # Layer 3 and 2 over every file: the server's own secret values, and what looks like a secret.
    # status.txt is made from scrubbed objects; its labels ("Credentials: NAME") are not secrets.
    for path, text in bundle.files.items():
        bundle.files[path] = collector.scrubber.text(text) if not path.endswith("/status.txt") else \
            _known_only(collector.scrubber, text)  # fmt: skip
    return bundle


def _known_only(scrubber: Scrubber, text: str) -> str:
    for value in sorted(scrubber.known, key=len, reverse=True):
        text = text.replace(value, "REDACTED")
    return text


def write(bundle: Bundle, path: str) -> int:
    """The bundle as a tar.gz at `path`; its size in bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in sorted(bundle.files.items()):
            data = text.encode("utf-8")
            entry = tarfile.TarInfo(name)
            entry.size, entry.mtime, entry.mode = len(data), int(time.time()), 0o644
            archive.addfile(entry, io.BytesIO(data))
    with open(path, "wb") as out:
        out.write(buffer.getvalue())
    return len(buffer.getvalue())
