"""The one wrapper every Kubernetes API call of the operator goes through.

It owns the error policy, so handlers never look at HTTP status codes:
- 404 on read or delete: "not there" (None / nothing to do);
- 409 (a conflicting write) and 429 (throttled) and 5xx: kopf.TemporaryError, so Kopf retries
  the handler after a delay (Retry-After when the server gives one);
- 422 (the object we built is invalid): kopf.PermanentError — retrying cannot help, and it is
  our bug or an input the schema could not catch;
- anything else propagates.

Writes are server-side apply with one field manager, so `apply` both creates and corrects
drift in every field kuberds sets, and leaves fields others own alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes
from kubernetes.client.rest import ApiException

from kuberds import API_GROUP, API_VERSION, metrics

FIELD_MANAGER = "kuberds-operator"


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


RESOURCES: dict[str, Resource] = {
    "Secret": Resource("v1", "secrets"),
    "ConfigMap": Resource("v1", "configmaps"),
    "Service": Resource("v1", "services"),
    "ServiceAccount": Resource("v1", "serviceaccounts"),
    "PersistentVolumeClaim": Resource("v1", "persistentvolumeclaims"),
    "Pod": Resource("v1", "pods"),
    "StorageClass": Resource("storage.k8s.io/v1", "storageclasses", namespaced=False),
    "StatefulSet": Resource("apps/v1", "statefulsets"),
    "PodDisruptionBudget": Resource("policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": Resource("networking.k8s.io/v1", "networkpolicies"),
    "Role": Resource("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Resource("rbac.authorization.k8s.io/v1", "rolebindings"),
    **{
        kind: Resource(f"{API_GROUP}/{API_VERSION}", plural)
        for kind, plural in (
            ("DBInstance", "dbinstances"),
            ("DBCluster", "dbclusters"),
            ("ReadReplica", "readreplicas"),
            ("CacheCluster", "cacheclusters"),
            ("DBSnapshot", "dbsnapshots"),
        )
    },
}


class Kube:
    """A thin, policy-owning client. One instance per operator process (thread-safe)."""

    def __init__(self, api: kubernetes.client.ApiClient):
        self.api = api

    @classmethod
    def from_environment(cls) -> Kube:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        return cls(kubernetes.client.ApiClient())

    # -- reads

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        with self._policy("get", kind):
            try:
                return self._call("GET", RESOURCES[kind].path(namespace, name))
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def list(self, kind: str, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        with self._policy("list", kind):
            return self._call("GET", RESOURCES[kind].path(namespace), query=query)["items"]

    # -- writes

    def apply(self, obj: dict, subresource: str | None = None) -> dict:
        """Create or update to match `obj` in every field kuberds manages (server-side apply)."""
        kind, meta = obj["kind"], obj["metadata"]
        path = RESOURCES[kind].path(meta.get("namespace"), meta["name"], subresource)
        with self._policy("apply", kind):
            return self._call(
                "PATCH",
                path,
                body=obj,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                content_type="application/apply-patch+yaml",
            )

    def create_if_absent(self, obj: dict) -> tuple[dict, bool]:
        """For objects that must never be overwritten once made (generated credentials):
        returns (the object as it is, whether this call created it)."""
        kind, meta = obj["kind"], obj["metadata"]
        existing = self.get(kind, meta.get("namespace"), meta["name"])
        if existing is not None:
            return existing, False
        with self._policy("create", kind):
            try:
                return self._call("POST", RESOURCES[kind].path(meta.get("namespace")), body=obj), True
            except ApiException as error:
                if error.status == 409:  # made by a concurrent pass between get and create
                    raise kopf.TemporaryError(f"{kind} {meta['name']} appeared meanwhile", delay=1) from error
                raise

    def merge_patch(self, kind: str, namespace: str | None, name: str, patch: dict,
                    subresource: str | None = None) -> dict | None:  # fmt: skip
        with self._policy("patch", kind):
            try:
                return self._call(
                    "PATCH",
                    RESOURCES[kind].path(namespace, name, subresource),
                    body=patch,
                    content_type="application/merge-patch+json",
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def delete(self, kind: str, namespace: str | None, name: str, *, uid: str | None = None) -> bool:
        """Deletes (background propagation); `uid` guards against deleting a re-created namesake."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with self._policy("delete", kind):
            try:
                self._call("DELETE", RESOURCES[kind].path(namespace, name), body=body)
                return True
            except ApiException as error:
                if error.status == 404:
                    return False
                raise

    # -- plumbing

    def _call(self, method: str, path: str, *, body: Any = None, query: list | None = None,
              content_type: str = "application/json") -> Any:  # fmt: skip
        method, url, headers, body, _ = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(method, url, header_params=headers, body=body)
        metrics.API_REQUESTS.labels(method=method).inc()
        raw = response.read()
        if not 200 <= response.status < 300:
            raise ApiException.from_response(http_resp=response, body=raw.decode(errors="replace"), data=None)
        return json.loads(raw) if raw else None

    @contextmanager
    def _policy(self, verb: str, kind: str) -> Iterator[None]:
        try:
            yield
        except ApiException as error:
            raise translate(error, f"{verb} {kind}") from error


def translate(error: ApiException, what: str) -> Exception:
    """Maps an API error onto what Kopf should do about it."""
    detail = _message(error)
    if error.status in (409, 429) or (error.status or 0) >= 500:
        retry_after = (error.headers or {}).get("Retry-After")
        # A conflict is resolved by re-reading at once; a throttle or outage by waiting.
        default = 1.0 if error.status == 409 else 5.0
        delay = float(retry_after) if retry_after and retry_after.isdigit() else default
        return kopf.TemporaryError(f"{what}: {error.status} {detail}", delay=delay)
    if error.status == 422:
        return kopf.PermanentError(f"{what}: invalid: {detail}")
    return error


def _message(error: ApiException) -> str:
    try:
        return json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError):
        return str(error.reason)
