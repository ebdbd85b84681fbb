"""A small client for the DBInstance objects of one test namespace, shared by the cluster tests."""

from __future__ import annotations

import json

import kubernetes
from kubernetes.client.rest import ApiException

from tests.support.kube import wait_for

GROUP, VERSION = "kuberds.io", "v1alpha1"


class DBInstances:
    """A small client for DBInstance objects of one namespace."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str):
        self.objects = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.namespace = namespace

    def create(self, name: str, **spec) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DBInstance", "metadata": {"name": name},
                "spec": {"engine": "postgres", **spec}}  # fmt: skip
        return self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "dbinstances", body)

    def get(self, name: str, plural: str = "dbinstances") -> dict | None:
        try:
            return self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch(self, name: str, spec: dict) -> dict:
        return self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "dbinstances", name, {"spec": spec}
        )

    def delete(self, name: str) -> None:
        self.objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, "dbinstances", name)

    def condition(self, name: str, type_: str) -> dict | None:
        status = (self.get(name) or {}).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict:
        return wait_for(
            lambda: (obj := self.get(name)) and (obj.get("status") or {}).get("phase") == phase and obj,
            timeout=timeout,
            what=f"DBInstance {name} phase {phase}",
        )

    def wait_condition(self, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 60):
        def matches():
            c = self.condition(name, type_)
            return c if c and c["status"] == status and (reason is None or c["reason"] == reason) else None

        return wait_for(matches, timeout=timeout, what=f"{name} condition {type_}={status} {reason or ''}")

    def release(self, name: str) -> None:
        """Lets a test's instance go without a final snapshot (the data plane is not here yet)."""
        if self.get(name):
            self.patch(name, {"deletionProtection": False, "skipFinalSnapshot": True})


def owned_by(obj, uid: str) -> bool:
    return any(ref.uid == uid and ref.controller for ref in obj.metadata.owner_references or [])


STORE = {"bucket": "backups", "endpoint": "https://s3.example:8443", "credentialsSecretName": "s3"}


def store_credentials(dbi: DBInstances) -> None:
    """The Secret STORE names (nothing connects to the store in this tier)."""
    dbi.core.create_namespaced_secret(dbi.namespace, {"metadata": {"name": "s3"}, "stringData": {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})  # fmt: skip


def agent_json(dbi: DBInstances, name: str) -> dict:
    return json.loads(dbi.core.read_namespaced_config_map(f"{name}-settings", dbi.namespace).data["agent.json"])
