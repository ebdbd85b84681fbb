"""A server's pooling proxy (spec.proxy): its configuration, Deployment, Service NAME-proxy,
disruption budget and NetworkPolicy. Pure.

The proxy pods run the engine's image (`kuberds proxy ENGINE`), at least two spread across
zones, and reach the server through its writer Service, so they follow the primary; the
operator pauses them around its own switchovers (kuberds.operations.proxy).
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds.api.classes import DB_INSTANCE_CLASSES
from kuberds.api.schema import to_json
from kuberds.builders import names
from kuberds.builders.network_policy import allowed_clients, operator_pods, scrapers
from kuberds.builders.server import Server
from kuberds.contract import TLS_CA_FILE, TLS_DIR, TLS_FILES, environment
from kuberds.engines.pgbouncer import PoolSettings

PROXY = "proxy"  # the app.kubernetes.io/component of the proxy's objects
READER_PROXY = "proxy-reader"  # and of the read-only proxy's (spec.proxy.readerEndpoint)


@dataclass(frozen=True)
class Pool:
    """One proxy of a server: the writer's (NAME-proxy, paused around switchovers), or the
    readers' (NAME-proxy-ro, in front of the reader Service)."""

    name: str  # of its Deployment, Service, ConfigMap, budget and NetworkPolicy
    component: str
    service: str  # the server's Service it reaches


def writer_pool(server: Server) -> Pool:
    return Pool(names.proxy(server.name), PROXY, names.writer_service(server.name))


def reader_pool(server: Server) -> Pool:
    return Pool(names.reader_proxy(server.name), READER_PROXY, names.reader_service(server.name))


def pools(server: Server) -> list[Pool]:
    """The proxies the spec asks for (none when the pool cannot be served)."""
    proxy = server.spec.proxy
    if not proxy.enabled or pool_problem(server):
        return []
    return [writer_pool(server), *([reader_pool(server)] if proxy.reader_endpoint else [])]


RUN_SIZE = "16Mi"  # the user list and a socket
RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def labels(server: Server, pool: Pool) -> dict[str, str]:
    return server.owner.labels(pool.component, server.spec.engine, server.version)


def selector(server: Server, pool: Pool) -> dict[str, str]:
    return server.owner.selector(pool.component)


def max_connections(server: Server) -> int:
    size = DB_INSTANCE_CLASSES[server.spec.instance_class]
    return server.engine.max_connections(size, dict(server.spec.parameters))


def pool_problem(server: Server) -> str | None:
    """Why the proxy as asked cannot run (None: it can)."""
    proxy = server.engine.proxy
    if proxy is None:
        return f"engine {server.spec.engine} has no proxy yet"
    return proxy.pool_problem(server.spec.proxy.default_pool_size, max_connections(server))


def pool_settings(server: Server, pool: Pool | None = None) -> PoolSettings:
    spec, proxy = server.spec, server.engine.proxy
    target = f"{(pool or writer_pool(server)).service}.{server.owner.namespace}.svc"
    if not server.tls_secret:
        client_tls, server_tls = "disable", "disable"
    else:
        client_tls = "require" if spec.tls.require else "prefer"
        # The issued certificate names the Services and comes with its CA; a user's own
        # may not, so it is only required then.
        server_tls = "verify-full" if server.issues_certificate else "require"
    return PoolSettings(
        server_host=target,
        server_port=server.port,
        pool_mode=spec.proxy.pool_mode,
        max_client_connections=spec.proxy.max_client_connections,
        default_pool_size=spec.proxy.default_pool_size,
        max_server_connections=proxy.share_per_pod(max_connections(server), spec.proxy.replicas),
        client_tls=client_tls,
        server_tls=server_tls,
        tls_dir=TLS_DIR if server.tls_secret else None,
        layout=proxy.layout,
    )


def config_map(server: Server, pool: Pool) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": server.owner.metadata(pool.name, labels(server, pool)),
        "data": server.engine.proxy.config(pool_settings(server, pool)),
    }


def _tls_volume(server: Server) -> dict:
    files = (*TLS_FILES, *((TLS_CA_FILE,) if server.issues_certificate else ()))
    items = [{"key": file, "path": file} for file in files]
    return {"name": "tls", "secret": {"secretName": server.tls_secret, "items": items, "defaultMode": 0o440}}


def _container(server: Server) -> dict:
    proxy, credentials = server.engine.proxy, names.agent_credentials(server.name)
    layout = proxy.layout

    def tcp(period: int, failures: int) -> dict:
        return {"tcpSocket": {"port": "proxy"}, "periodSeconds": period, "failureThreshold": failures,
                "timeoutSeconds": 3}  # fmt: skip

    return {
        "name": proxy.name,
        "image": server.config.images[server.engine.name],
        "imagePullPolicy": server.config.image_pull_policy,
        "args": ["proxy", server.engine.name],
        "env": [environment.secret_env(var, credentials) for var in environment.PROXY_CREDENTIALS],
        "ports": [
            {"name": "proxy", "containerPort": layout.port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": layout.metrics_port, "protocol": "TCP"},
        ],
        "resources": RESOURCES,
        "readinessProbe": tcp(2, 2),
        "livenessProbe": tcp(10, 3),
        "volumeMounts": [
            {"name": "config", "mountPath": layout.config_dir, "readOnly": True},
            {"name": "run", "mountPath": layout.run_dir},
            *([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if server.tls_secret else []),
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def deployment(server: Server, pool: Pool) -> dict:
    layout = server.engine.proxy.layout
    scheduling = server.spec.scheduling
    spread = [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": selector(server, pool)}}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]  # fmt: skip
    pod_spec: dict = {
        "automountServiceAccountToken": False,  # the proxy never talks to the API server
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": layout.uid,
            "runAsGroup": layout.uid,
            "fsGroup": layout.uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # SIGTERM becomes a safe shutdown: transactions under way finish first.
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(server)],
        "volumes": [
            {"name": "config", "configMap": {"name": pool.name}},
            {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": RUN_SIZE}},
            *([_tls_volume(server)] if server.tls_secret else []),
        ],
        "topologySpreadConstraints": spread,
    }
    if scheduling.node_selector:
        pod_spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        pod_spec["tolerations"] = [to_json(t) for t in scheduling.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": server.owner.metadata(pool.name, labels(server, pool)),
        "spec": {
            "replicas": server.spec.proxy.replicas,
            "selector": {"matchLabels": selector(server, pool)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                # No hash of the configuration here: the pod reloads it (and a renewed
                # certificate) in place, so a new pool size disconnects no client.
                "metadata": {"labels": labels(server, pool)},
                "spec": pod_spec,
            },
        },
    }


def service(server: Server, pool: Pool) -> dict:
    """NAME-proxy (NAME-proxy-ro), on the server's own port: clients change the host name only."""
    engine = server.spec.engine
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": server.owner.metadata(pool.name, labels(server, pool)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(server, pool),
            "ports": [{"name": engine, "port": server.port, "targetPort": "proxy", "protocol": "TCP"}],
        },
    }


def disruption_budget(server: Server, pool: Pool) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": server.owner.metadata(pool.name, labels(server, pool)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(server, pool)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def network_policy(server: Server, pool: Pool) -> dict:
    """The server's allowed clients and the operator's pods (the console: pause and resume)
    reach the proxy's port; the metrics scrapers its metrics."""
    layout = server.engine.proxy.layout
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": server.owner.metadata(pool.name, labels(server, pool)),
        "spec": {
            "podSelector": {"matchLabels": selector(server, pool)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [*allowed_clients(server), *operator_pods(server)],
                 "ports": [{"protocol": "TCP", "port": layout.port}]},
                {"from": scrapers(server), "ports": [{"protocol": "TCP", "port": layout.metrics_port}]},
            ],
        },
    }  # fmt: skip


def proxy_objects(server: Server) -> list[dict]:
    """The objects of every proxy the spec asks for (none when off or unservable)."""
    return [obj for pool in pools(server)
            for obj in (config_map(server, pool), network_policy(server, pool), service(server, pool),
                        disruption_budget(server, pool), deployment(server, pool))]  # fmt: skip
