"""The agent's Kubernetes client: the report on its own pod, its server's DBSnapshots, a cache
node's membership ConfigMap (what the agent's Role allows). Every call is bounded by a timeout, and any failure —
refused, unreachable, timed out — is a KubeError the loop survives."""

from __future__ import annotations

import urllib3
from kubernetes.client.rest import ApiException

from kuberds.contract import snapshots
from kuberds.restclient import CORE, RestClient, custom, error_message

RESOURCES = {"Pod": CORE["Pod"], "ConfigMap": CORE["ConfigMap"], "Lease": CORE["Lease"], "Secret": CORE["Secret"],
             snapshots.KIND: custom(snapshots.PLURAL)}  # fmt: skip
TIMEOUT_SECONDS = 10.0


class KubeError(RuntimeError):
    """The API server refused or did not answer."""


class KubeConflict(KubeError):
    """409: the object changed since it was read (or exists already): someone else won."""


class AgentKube:
    def __init__(self, rest: RestClient):
        self.rest = rest

    @classmethod
    def from_environment(cls, timeout: float = TIMEOUT_SECONDS) -> AgentKube:
        return cls(RestClient(RestClient.api_from_environment(), RESOURCES, timeout=timeout))

    def _request(self, method: str, path: str, **kwargs) -> dict | None:
        try:
            return self.rest.request(method, path, **kwargs)
        except ApiException as error:
            if error.status == 404:
                return None
            failure = KubeConflict if error.status == 409 else KubeError
            raise failure(f"{method} {path}: {error.status} {error_message(error)}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubeError(f"{method} {path}: {error}") from error

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self._request("GET", self.rest.path(kind, namespace, name))

    def list(self, kind: str, namespace: str) -> list[dict]:
        return (self._request("GET", self.rest.path(kind, namespace)) or {}).get("items", [])

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict,
                    subresource: str | None = None) -> dict | None:  # fmt: skip
        """With metadata.resourceVersion in `patch`, conditional: KubeConflict if it moved."""
        return self._request("PATCH", self.rest.path(kind, namespace, name, subresource), body=patch,
                             content_type="application/merge-patch+json")  # fmt: skip

    def create(self, kind: str, namespace: str, body: dict) -> dict | None:
        """KubeConflict when it exists already."""
        return self._request("POST", self.rest.path(kind, namespace), body=body)
