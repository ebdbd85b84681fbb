"""The agent's Kubernetes client: the report on its own pod, its server's DBSnapshots, a cache
node's membership ConfigMap (what the agent's Role allows). Every call is bounded by a timeout, and any failure —
refused, unreachable, timed out — is a KubeError the loop survives."""

from __future__ import annotations

import urllib3
from kubernetes.client.rest import ApiException

from kuberds.contract import snapshots
from kuberds.restclient import CORE, RestClient, custom, error_message

RESOURCES = {"Pod": CORE["Pod"], "ConfigMap": CORE["ConfigMap"], snapshots.KIND: custom(snapshots.PLURAL)}
TIMEOUT_SECONDS = 10.0


class KubeError(RuntimeError):
    """The API server refused or did not answer."""


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
            raise KubeError(f"{method} {path}: {error.status} {error_message(error)}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubeError(f"{method} {path}: {error}") from error

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self._request("GET", self.rest.path(kind, namespace, name))

    def list(self, kind: str, namespace: str) -> list[dict]:
        return (self._request("GET", self.rest.path(kind, namespace)) or {}).get("items", [])

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict, subresource: str | None = None) -> None:
        self._request("PATCH", self.rest.path(kind, namespace, name, subresource), body=patch,
                      content_type="application/merge-patch+json")  # fmt: skip
