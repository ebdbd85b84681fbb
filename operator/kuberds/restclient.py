"""Kubernetes REST calls by kind, for both sides: the operator's policy-owning wrapper
(kuberds.kube) and the agent's small client (kuberds.agent.kube) stand on this.

It knows where each kind lives (paths), sends one request with a timeout, and raises the
client library's ApiException on any answer outside 2xx; what an error means is decided
by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from kuberds import API_GROUP, API_VERSION


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


def custom(plural: str) -> Resource:
    """A kuberds custom resource."""
    return Resource(f"{API_GROUP}/{API_VERSION}", plural)


CORE: dict[str, Resource] = {
    "Secret": Resource("v1", "secrets"),
    "ConfigMap": Resource("v1", "configmaps"),
    "Service": Resource("v1", "services"),
    "ServiceAccount": Resource("v1", "serviceaccounts"),
    "PersistentVolumeClaim": Resource("v1", "persistentvolumeclaims"),
    "Pod": Resource("v1", "pods"),
    "StorageClass": Resource("storage.k8s.io/v1", "storageclasses", namespaced=False),
    "StatefulSet": Resource("apps/v1", "statefulsets"),
    "Deployment": Resource("apps/v1", "deployments"),
    "PodDisruptionBudget": Resource("policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": Resource("networking.k8s.io/v1", "networkpolicies"),
    "EndpointSlice": Resource("discovery.k8s.io/v1", "endpointslices"),
    "Lease": Resource("coordination.k8s.io/v1", "leases"),
    "Role": Resource("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Resource("rbac.authorization.k8s.io/v1", "rolebindings"),
}


def label_query(labels: Mapping[str, str] | None) -> list[tuple[str, str]]:
    return [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []


class RestClient:
    """Requests by kind; `resources` says which kinds it knows."""

    def __init__(self, api: kubernetes.client.ApiClient, resources: Mapping[str, Resource], *,
                 timeout: float = 30.0, on_request: Callable[[str], None] | None = None):  # fmt: skip
        self.api, self.resources, self.timeout, self.on_request = api, dict(resources), timeout, on_request

    @staticmethod
    def api_from_environment() -> kubernetes.client.ApiClient:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return kubernetes.client.ApiClient()

    def path(self, kind: str, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        return self.resources[kind].path(namespace, name, subresource)

    def request(self, method: str, path: str, *, body: Any = None, query: list | None = None,
                content_type: str = "application/json") -> Any:  # fmt: skip
        """The decoded answer; ApiException for anything outside 2xx."""
        method, url, headers, body, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=self.timeout)
        if self.on_request:
            self.on_request(method)
        raw = response.read()
        if not 200 <= response.status < 300:
            raise ApiException.from_response(http_resp=response, body=raw.decode(errors="replace"), data=None)
        return json.loads(raw) if raw else None


def error_message(error: ApiException) -> str:
    """The API server's own words for an error."""
    try:
        return json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)
