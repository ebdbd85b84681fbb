"""The kinds the plugin works on, the labels kuberds puts on a server's objects, and what the
plugin reads of a server's object (its engine, its primary, its members).

The plugin is a client of the API: it imports none of the operator's modules (only the
neutral ones: the contract's report, quantities); the few names it shares with the operator
(labels, the switchover annotation, the kinds' plurals) are spelled again here, and
tests/unit/test_plugin.py checks each against the operator's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds import API_GROUP, API_VERSION
from kuberds.plugin.errors import PluginError

GROUP, VERSION = API_GROUP, API_VERSION
API_VERSION_STRING = f"{API_GROUP}/{API_VERSION}"

INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
OWNER_KIND_LABEL = "kuberds.io/owner-kind"
ROLE_LABEL = "kuberds.io/role"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The app.kubernetes.io/component of a server's pods: database or cache; the proxy's.
DATABASE, CACHE, PROXY = "database", "cache", "proxy"

# A person's request to the operator (kuberds.api.requests): hand the primary role to the
# member named in the value, or to the one the HA manager finds best.
SWITCHOVER_ANNOTATION = f"requests.{API_GROUP}/switchover-to"
ANY_MEMBER = "any"

PRIMARY_ROLES = ("primary", "master", "standbyLeader", "leader")


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    component: str  # of its pods
    snapshot_field: str | None = None  # its name in a DBSnapshot's spec.source

    @property
    def resource(self) -> str:
        """As RBAC names it: plural.group."""
        return f"{self.plural}.{API_GROUP}"

    @property
    def owner_label(self) -> str:
        return self.kind.lower()

    def names(self) -> set[str]:
        return {self.kind.lower(), self.plural, *self.short_names}


DBINSTANCE = KindInfo("DBInstance", "dbinstances", ("dbi", "rdsi"), DATABASE, "dbInstance")
DBCLUSTER = KindInfo("DBCluster", "dbclusters", ("dbc",), DATABASE, "dbCluster")
READREPLICA = KindInfo("ReadReplica", "readreplicas", ("rr", "dbrr"), DATABASE)
CACHECLUSTER = KindInfo("CacheCluster", "cacheclusters", ("cc", "cache"), CACHE, "cacheCluster")
DBSNAPSHOT = KindInfo("DBSnapshot", "dbsnapshots", ("dbsnap", "snap"), "")

SERVER_KINDS = (DBINSTANCE, DBCLUSTER, READREPLICA, CACHECLUSTER)
ALL_KINDS = (*SERVER_KINDS, DBSNAPSHOT)


def kind_named(text: str) -> KindInfo:
    """A server kind by its kind, plural or short name, in any case."""
    wanted = text.lower().split(".")[0]
    for info in SERVER_KINDS:
        if wanted in info.names():
            return info
    raise PluginError(f"unknown kind {text!r}: use one of {kind_list(SERVER_KINDS)}")


def kind_list(infos: tuple[KindInfo, ...] | list[KindInfo]) -> str:
    names = [i.kind for i in infos]
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


def pod_selector(info: KindInfo, name: str, component: str | None = None) -> str:
    """The label selector of a server's pods (its database or cache pods, or its proxy's)."""
    return f"{owned_selector(info, name)},{COMPONENT_LABEL}={component or info.component}"


def owned_selector(info: KindInfo, name: str) -> str:
    """Every object kuberds built for the server (its pods, Services, ConfigMaps, …)."""
    return f"{INSTANCE_LABEL}={name},{OWNER_KIND_LABEL}={info.owner_label}"


def spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def status(obj: dict) -> dict:
    return obj.get("status") or {}


def name_of(obj: dict) -> str:
    return obj["metadata"]["name"]


def engine_of(obj: dict) -> str | None:
    """postgres, mariadb, mysql, redis or memcached; a ReadReplica's is its source's."""
    if obj.get("kind") == READREPLICA.kind:
        source = status(obj).get("source") or {}
        external = (spec(obj).get("source") or {}).get("external") or {}
        return source.get("engine") or external.get("engine") or "postgres"
    return spec(obj).get("engine")


def primary_of(obj: dict) -> str | None:
    """The member that takes writes now, as status says (a DBCluster's writer)."""
    return status(obj).get("currentPrimary") or status(obj).get("writer")


def members_of(obj: dict) -> list[dict]:
    return list(status(obj).get("members") or [])


def is_primary_role(role: str | None) -> bool:
    return role in PRIMARY_ROLES
