"""What the e2e suite applies besides kuberds itself, as plain dicts: an S3 server running in
the cluster (SeaweedFS from our `s3` image), and a client pod from the postgres image."""

from __future__ import annotations

import json

from tests.support.s3 import identities

S3_PORT = 8333
S3_ACCESS_KEY, S3_SECRET_KEY = "kuberds-e2e", "kuberds-e2e-secret-key"
BUCKET = "kuberds-e2e"
S3_CREDENTIALS, S3_CA = "e2e-s3-credentials", "e2e-s3-ca"
CLIENT = "client"

# Pod Security "restricted", as every pod here runs.
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "kuberds-e2e"}


def s3_server(namespace: str, image: str, certificate: str, key: str) -> list[dict]:
    """SeaweedFS (master, volume, filer and S3 gateway in one process) on an emptyDir, serving
    S3 over TLS (pgBackRest speaks S3 over HTTPS only) with one access key."""
    meta = {"name": "s3", "namespace": namespace, "labels": labels("s3")}
    args = [
        "server", "-dir=/data", "-ip.bind=0.0.0.0", "-volume.max=0", "-master.volumeSizeLimitMB=256",
        "-filer", "-s3", f"-s3.port={S3_PORT}", "-s3.config=/config/s3.json",
        "-s3.cert.file=/tls/tls.crt", "-s3.key.file=/tls/tls.key",
    ]  # fmt: skip
    container = {
        "name": "s3",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "s3", "containerPort": S3_PORT}],
        "readinessProbe": {"tcpSocket": {"port": S3_PORT}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": "/config", "readOnly": True},
            {"name": "tls", "mountPath": "/tls", "readOnly": True},
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {**meta, "name": "s3-config"},
         "stringData": {"s3.json": json.dumps(identities(S3_ACCESS_KEY, S3_SECRET_KEY))}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {**meta, "name": "s3-tls"}, "type": "kubernetes.io/tls",
         "stringData": {"tls.crt": certificate, "tls.key": key}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels("s3")},
            "template": {"metadata": {"labels": labels("s3")}, "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                    "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "config", "secret": {"secretName": "s3-config"}},
                    {"name": "tls", "secret": {"secretName": "s3-tls"}},
                ],
            }},
        }},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {
            "selector": labels("s3"), "ports": [{"name": "s3", "port": S3_PORT, "targetPort": "s3"}],
        }},
    ]  # fmt: skip


def s3_endpoint(namespace: str) -> str:
    return f"https://s3.{namespace}.svc:{S3_PORT}"


def s3_credentials(namespace: str, ca: str) -> list[dict]:
    """The access key, and the CA (the gateway's self-signed certificate) servers verify it with."""
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_CREDENTIALS, "namespace": namespace},
             "stringData": {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": S3_CA, "namespace": namespace},
             "stringData": {"ca.crt": ca}}]  # fmt: skip


def client_pod(namespace: str, image: str, writer_source: str, node: str | None = None) -> list[dict]:
    """A long-running pod from the postgres image (psql, and psycopg in /opt/kuberds) that the
    suite execs into: every database connection of the suite starts inside the cluster (on
    `node` when given: a node-loss run keeps its client off the node it freezes)."""
    meta = {"name": CLIENT, "namespace": namespace, "labels": labels(CLIENT)}
    placement = {"nodeSelector": {"kubernetes.io/hostname": node}} if node else {}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": "e2e-writer"},
         "data": {"writer.py": writer_source}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 1,
            "enableServiceLinks": False,
            **placement,
            "containers": [{
                "name": CLIENT,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": RESTRICTED_CONTAINER,
                "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "scripts", "configMap": {"name": "e2e-writer"}}, {"name": "tmp", "emptyDir": {}}],
        }},
    ]  # fmt: skip


def dbinstance(namespace: str, name: str, **spec: object) -> dict:
    """A PostgreSQL DBInstance backed up to the in-cluster S3 server."""
    return {
        "apiVersion": "kuberds.io/v1alpha1",
        "kind": "DBInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "engine": "postgres",
            "instanceClass": "db.t3.micro",
            "storage": {"size": "1Gi"},
            **spec,
        },
    }


def dbcluster(namespace: str, name: str, **spec: object) -> dict:
    """A PostgreSQL DBCluster (a writer and readers) of the smallest class."""
    body = dbinstance(namespace, name, **spec)
    return {**body, "kind": "DBCluster"}


def object_store(s3_namespace: str) -> dict:
    # Verified against the gateway's self-signed certificate, handed over as a private CA.
    return {"bucket": BUCKET, "endpoint": s3_endpoint(s3_namespace), "path": "e2e",
            "credentialsSecretName": S3_CREDENTIALS, "caSecretName": S3_CA}  # fmt: skip
