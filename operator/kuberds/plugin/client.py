"""Every API call of the plugin: the official `kubernetes` client, configured from the user's
kubeconfig (and context) as kubectl would be, answers read as the API server's own JSON.

Failures become one clear line (PluginError): what was not found and where, or which verb on
which resource the user's role lacks.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from kuberds import __version__
from kuberds.plugin.errors import PluginError
from kuberds.plugin.kinds import GROUP, VERSION, KindInfo

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REQUEST_TIMEOUT = 30  # seconds per API request


@dataclass
class Target:
    """Where the user points the plugin: the same flags kubectl takes."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None

    def kubectl_flags(self, namespace: str) -> list[str]:
        """The flags that make a kubectl the plugin starts talk to the same cluster as it does."""
        flags = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        return [*flags, *([f"--context={self.context}"] if self.context else []), f"--namespace={namespace}"]


def _kubeconfig_path(given: str | None) -> str:
    # Resolved on every call, not at import: kubernetes.config reads $KUBECONFIG only once.
    return given or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def load(target: Target) -> tuple[kubernetes.client.ApiClient, str]:
    """An API client for the target, and its namespace (the flag's, else the context's, else
    "default"); inside a pod without a kubeconfig, the pod's ServiceAccount."""
    path = _kubeconfig_path(target.kubeconfig)
    present = any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p)
    if not present and not target.kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        namespace = target.namespace or (SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
                                         if SERVICE_ACCOUNT_NAMESPACE.is_file() else "default")  # fmt: skip
        return kubernetes.client.ApiClient(configuration), namespace
    if not present:
        raise PluginError(f"no kubeconfig at {path}: give --kubeconfig, or set KUBECONFIG")
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
        chosen = active
        if target.context:
            chosen = next((c for c in contexts if c["name"] == target.context), None)
            if chosen is None:
                known = ", ".join(c["name"] for c in contexts) or "none"
                raise PluginError(f"context {target.context!r} is not in {path} (its contexts: {known})")
        api = kubernetes.config.new_client_from_config(config_file=path, context=target.context,
                                                       persist_config=False)  # fmt: skip
    except ConfigException as error:
        raise PluginError(f"kubeconfig {path}: {error}") from None
    namespace = target.namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return api, namespace


def api_message(error: ApiException) -> str:
    """The API server's own words (its Status message), else the HTTP reason."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason or error.body)


@dataclass
class Client:
    api: kubernetes.client.ApiClient
    namespace: str
    target: Target = field(default_factory=Target)

    @classmethod
    def connect(cls, target: Target) -> Client:
        api, namespace = load(target)
        api.user_agent = f"kubectl-kuberds/{__version__}"  # what audit logs and managedFields name
        return cls(api, namespace, target)

    def __post_init__(self) -> None:
        client = kubernetes.client
        self.core, self.custom = client.CoreV1Api(self.api), client.CustomObjectsApi(self.api)
        self.apps, self.policy = client.AppsV1Api(self.api), client.PolicyV1Api(self.api)
        self.networking, self.discovery = client.NetworkingV1Api(self.api), client.DiscoveryV1Api(self.api)

    @property
    def server(self) -> str:
        return self.api.configuration.host

    # ------------------------------------------------------------ the calls, their failures

    def call(self, verb: str, resource: str, fn: Callable, *args, missing: str | None = None, **kwargs):
        """fn(*args) as raw JSON (text for logs). `missing`: what a 404 means to the user."""
        try:
            response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as error:
            raise self.failure(error, verb, resource, missing) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise PluginError(f"cannot reach the API server at {self.server}: {error}") from None
        text = response.data.decode("utf-8", errors="replace")
        return text if resource == "pods/log" else json.loads(text or "null")

    def failure(self, error: ApiException, verb: str, resource: str, missing: str | None) -> PluginError:
        where = f"in namespace {self.namespace}"
        if error.status == 404 and missing:
            return PluginError(f"{missing} not found {where}")
        if error.status == 403:
            return PluginError(f"forbidden: you may not {verb} {resource} {where}; a Role granting verb {verb!r} "
                               f"on {resource} is needed (docs/plugin.md lists each command's): "
                               f"{api_message(error)}")  # fmt: skip
        if error.status == 401:
            return PluginError(f"unauthorized: the API server at {self.server} refused the kubeconfig's credentials")
        return PluginError(f"{verb} {resource} {where} failed ({error.status}): {api_message(error)}")

    # ------------------------------------------------------------ kuberds' objects

    def get(self, info: KindInfo, name: str) -> dict:
        return self.call("get", info.resource, self.custom.get_namespaced_custom_object, GROUP, VERSION,
                         self.namespace, info.plural, name, missing=f"{info.kind} {name}")  # fmt: skip

    def find(self, info: KindInfo, name: str) -> dict | None:
        """The object, or None when there is none (or its kind is not installed)."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, info.plural, name,
                                                            _request_timeout=REQUEST_TIMEOUT)  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                return None
            raise self.failure(error, "get", info.resource, None) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise PluginError(f"cannot reach the API server at {self.server}: {error}") from None

    def list(self, info: KindInfo) -> list[dict]:
        listed = self.call("list", info.resource, self.custom.list_namespaced_custom_object, GROUP, VERSION,
                           self.namespace, info.plural)  # fmt: skip
        return [{**item, "apiVersion": f"{GROUP}/{VERSION}", "kind": info.kind} for item in listed["items"]]

    def patch(self, info: KindInfo, name: str, body: dict) -> dict:
        """A JSON merge patch (null removes a key)."""
        return self.call("patch", info.resource, self.custom.patch_namespaced_custom_object, GROUP, VERSION,
                         self.namespace, info.plural, name, body, missing=f"{info.kind} {name}")  # fmt: skip

    def create(self, info: KindInfo, body: dict) -> dict:
        try:
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, info.plural, body,
                                                               _request_timeout=REQUEST_TIMEOUT)  # fmt: skip
        except ApiException as error:
            name = body["metadata"]["name"]
            if error.status == 409:
                raise PluginError(f"{info.kind} {name} already exists in namespace {self.namespace}") from None
            if error.status == 422:  # the schema's or a CEL rule's refusal, in the API server's words
                raise PluginError(f"the API server refused {info.kind} {name}: {api_message(error)}") from None
            raise self.failure(error, "create", info.resource, None) from None

    # ------------------------------------------------------------ Kubernetes objects

    def pods(self, selector: str) -> list[dict]:
        listed = self.call("list", "pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        return sorted(listed["items"], key=lambda p: p["metadata"]["name"])

    def pod(self, name: str) -> dict:
        return self.call("get", "pods", self.core.read_namespaced_pod, name, self.namespace, missing=f"Pod {name}")

    def events(self, kind: str | None, name: str) -> list[dict]:
        selector = f"involvedObject.name={name}" + (f",involvedObject.kind={kind}" if kind else "")
        return self.call("list", "events", self.core.list_namespaced_event, self.namespace,
                         field_selector=selector)["items"]  # fmt: skip

    def all_events(self) -> list[dict]:
        return self.call("list", "events", self.core.list_namespaced_event, self.namespace)["items"]

    def secret(self, name: str) -> dict:
        """A Secret as the API returns it (the report redacts it at once: kuberds.plugin.redact)."""
        return self.call("get", "secrets", self.core.read_namespaced_secret, name, self.namespace,
                         missing=f"Secret {name}")  # fmt: skip

    def secret_value(self, name: str, key: str) -> str | None:
        """One key of a Secret, decoded (connect only: the report never writes values)."""
        value = (self.secret(name).get("data") or {}).get(key)
        return base64.b64decode(value).decode() if value else None

    def log(self, pod: str, container: str, *, since_seconds: int | None = None, tail: int | None = None,
            previous: bool = False, limit_bytes: int | None = None) -> str:  # fmt: skip
        options = {k: v for k, v in (("since_seconds", since_seconds), ("tail_lines", tail),
                                     ("limit_bytes", limit_bytes)) if v is not None}  # fmt: skip
        return self.call("get", "pods/log", self.core.read_namespaced_pod_log, pod, self.namespace,
                         container=container, timestamps=True, previous=previous or None,
                         missing=f"the log of {pod}/{container}", **options)  # fmt: skip

    def listing(self, resource: str, selector: str | None = None) -> list[dict]:
        """Items of a namespaced resource (LISTABLE), with their kind and apiVersion."""
        kind, api_version, method = LISTABLE[resource]
        fn = getattr(getattr(self, method[0]), method[1])
        listed = self.call("list", resource, fn, self.namespace, **({"label_selector": selector} if selector else {}))
        return [{"apiVersion": api_version, "kind": kind, **item} for item in listed["items"]]


# resource (as RBAC names it) → kind, apiVersion, (API attribute, list method)
LISTABLE: dict[str, tuple[str, str, tuple[str, str]]] = {
    "statefulsets.apps": ("StatefulSet", "apps/v1", ("apps", "list_namespaced_stateful_set")),
    "deployments.apps": ("Deployment", "apps/v1", ("apps", "list_namespaced_deployment")),
    "pods": ("Pod", "v1", ("core", "list_namespaced_pod")),
    "services": ("Service", "v1", ("core", "list_namespaced_service")),
    "persistentvolumeclaims": ("PersistentVolumeClaim", "v1", ("core", "list_namespaced_persistent_volume_claim")),
    "configmaps": ("ConfigMap", "v1", ("core", "list_namespaced_config_map")),
    "secrets": ("Secret", "v1", ("core", "list_namespaced_secret")),
    "poddisruptionbudgets.policy": ("PodDisruptionBudget", "policy/v1",
                                    ("policy", "list_namespaced_pod_disruption_budget")),
    "networkpolicies.networking.k8s.io": ("NetworkPolicy", "networking.k8s.io/v1",
                                          ("networking", "list_namespaced_network_policy")),
    "endpointslices.discovery.k8s.io": ("EndpointSlice", "discovery.k8s.io/v1",
                                        ("discovery", "list_namespaced_endpoint_slice")),
}  # fmt: skip
