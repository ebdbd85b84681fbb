"""The one wrapper every Kubernetes API call of the operator goes through.

It owns the error policy, so handlers never look at HTTP status codes:
- 404 on read or delete: "not there" (None / nothing to do);
- 409 (a conflicting write) and 429 (throttled) and 5xx: kopf.TemporaryError, so Kopf retries
  the handler after a delay (Retry-After when the server gives one);
- 422 (the object we built is invalid): kopf.PermanentError — retrying cannot help, and it is
  our bug or an input the schema could not catch;
- 403 because the namespace is being deleted: NamespaceTerminating (a TemporaryError callers
  may treat as "nothing to do here any more");
- anything else propagates.

Writes are server-side apply with one field manager, so `apply` both creates and corrects
drift in every field kuberds sets, and leaves fields others own alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf
import kubernetes
from kubernetes.client.rest import ApiException

from kuberds import metrics
from kuberds.api.v1alpha1 import KINDS
from kuberds.restclient import CORE, Resource, RestClient, custom, error_message, label_query

FIELD_MANAGER = "kuberds-operator"


# Every kind the operator reads or writes: the core ones and the API's own (its registry).
RESOURCES: dict[str, Resource] = {**CORE, **{k.kind: custom(k.plural) for k in KINDS}}


class Kube:
    """A thin, policy-owning client. One instance per operator process (thread-safe)."""

    def __init__(self, api: kubernetes.client.ApiClient, timeout: float = 30.0):
        count = metrics.API_REQUESTS.labels
        self.rest = RestClient(api, RESOURCES, timeout=timeout, on_request=lambda method: count(method=method).inc())

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(RestClient.api_from_environment())

    # -- reads

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        with self._policy("get", kind, namespace):
            try:
                return self.rest.request("GET", self.rest.path(kind, namespace, name))
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def list(self, kind: str, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict]:
        query = label_query(labels)
        with self._policy("list", kind, namespace):
            return self.rest.request("GET", self.rest.path(kind, namespace), query=query)["items"]

    # -- writes

    def apply(self, obj: dict, subresource: str | None = None) -> dict:
        """Create or update to match `obj` in every field kuberds manages (server-side apply)."""
        kind, meta = obj["kind"], obj["metadata"]
        path = self.rest.path(kind, meta.get("namespace"), meta["name"], subresource)
        with self._policy("apply", kind, meta.get("namespace")):
            return self.rest.request(
                "PATCH",
                path,
                body=obj,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                content_type="application/apply-patch+yaml",
            )

    def create(self, obj: dict) -> dict:
        """For objects that must never be overwritten once made (generated credentials), when
        the caller has seen that it is absent: made meanwhile by someone else is a conflict,
        and the pass is retried (it then sees the object)."""
        kind, meta = obj["kind"], obj["metadata"]
        with self._policy("create", kind, meta.get("namespace")):
            return self.rest.request("POST", self.rest.path(kind, meta.get("namespace")), body=obj)

    def create_if_absent(self, obj: dict) -> tuple[dict, bool]:
        """For objects that must never be overwritten once made (generated credentials):
        returns (the object as it is, whether this call created it)."""
        kind, meta = obj["kind"], obj["metadata"]
        existing = self.get(kind, meta.get("namespace"), meta["name"])
        if existing is not None:
            return existing, False
        with self._policy("create", kind, meta.get("namespace")):
            try:
                return self.rest.request("POST", self.rest.path(kind, meta.get("namespace")), body=obj), True
            except ApiException as error:
                if error.status == 409:  # made by a concurrent pass between get and create
                    raise kopf.TemporaryError(f"{kind} {meta['name']} appeared meanwhile", delay=1) from error
                raise

    def merge_patch(self, kind: str, namespace: str | None, name: str, patch: dict,
                    subresource: str | None = None) -> dict | None:  # fmt: skip
        with self._policy("patch", kind, namespace):
            try:
                return self.rest.request(
                    "PATCH",
                    self.rest.path(kind, namespace, name, subresource),
                    body=patch,
                    content_type="application/merge-patch+json",
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise

    def delete(self, kind: str, namespace: str | None, name: str, *, uid: str | None = None,
               orphan: bool = False) -> bool:  # fmt: skip
        """Deletes (background propagation; `orphan`: the dependents stay, without owner);
        `uid` guards against deleting a re-created namesake."""
        body: dict[str, Any] = {"propagationPolicy": "Orphan" if orphan else "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with self._policy("delete", kind, namespace):
            try:
                self.rest.request("DELETE", self.rest.path(kind, namespace, name), body=body)
                return True
            except ApiException as error:
                if error.status == 404:
                    return False
                raise

    # -- plumbing

    @contextmanager
    def _policy(self, verb: str, kind: str, namespace: str | None) -> Iterator[None]:
        try:
            yield
        except ApiException as error:
            translated = translate(error, f"{verb} {kind}")
            if isinstance(translated, NamespaceTerminating) and namespace:
                terminating(namespace, seen=True)
            raise translated from error


class NamespaceTerminating(kopf.TemporaryError):
    """The namespace is being deleted: nothing new may be created in it."""


# Namespaces seen being deleted, and when: nothing new may go there (Events neither). A name
# is forgotten after a while, since a namespace of the same name may be made again.
_TERMINATING: dict[str, float] = {}
TERMINATING_MEMORY_SECONDS = 600.0


def terminating(namespace: str, seen: bool = False) -> bool:
    """Whether the namespace was seen being deleted lately (`seen`: it just was)."""
    now = time.monotonic()
    if seen:
        _TERMINATING[namespace] = now
    return now - _TERMINATING.get(namespace, -TERMINATING_MEMORY_SECONDS) < TERMINATING_MEMORY_SECONDS


def translate(error: ApiException, what: str) -> Exception:
    """Maps an API error onto what Kopf should do about it."""
    detail = error_message(error)
    if error.status == 403 and "being terminated" in detail:
        return NamespaceTerminating(f"{what}: the namespace is being deleted", delay=60)
    if error.status in (409, 429) or (error.status or 0) >= 500:
        retry_after = (error.headers or {}).get("Retry-After")
        # A conflict is resolved by re-reading at once; a throttle or outage by waiting.
        default = 1.0 if error.status == 409 else 5.0
        delay = float(retry_after) if retry_after and retry_after.isdigit() else default
        return kopf.TemporaryError(f"{what}: {error.status} {detail}", delay=delay)
    if error.status == 422:
        return kopf.PermanentError(f"{what}: invalid: {detail}")
    return error
