"""One handler per kind, each a few thin functions over kuberds.operations.

    dbinstance   DBInstance: a server kind (pods, members, drift, a final snapshot)
    dbcluster    DBCluster: a server kind of a writer and readers behind routed endpoints
    readreplica  ReadReplica: a server kind that follows a DBInstance until promoted
    dbsnapshot   DBSnapshot: checked by the operator, taken and removed by the source's agent
    cachecluster CacheCluster: cache nodes (Memcached with Auto Discovery)
    unsupported  every kind of the API without a handler yet: told so, never ignored

kuberds.triggers registers every kind of the API (kuberds.api.v1alpha1.KINDS): server kinds
from SERVER_HANDLERS, cache kinds from CACHE_HANDLERS, the others from HANDLERS; a kind
added to the API without a handler is registered as unsupported (told so, never ignored).
"""

from __future__ import annotations

from kuberds.handlers import cachecluster, dbcluster, dbinstance, dbsnapshot, readreplica

# Kinds whose objects own database pods: reconciled, refreshed from their members' events,
# their Services and NetworkPolicies kept as built, a final snapshot on deletion.
SERVER_HANDLERS = {dbinstance.KIND: dbinstance, dbcluster.KIND: dbcluster, readreplica.KIND: readreplica}
# Kinds reconciled on their own (no children); DBSnapshot is the one, and its handler keeps
# its source agent's grant to write its status (triggers._register_snapshots).
HANDLERS = {dbsnapshot.KIND: dbsnapshot}
# Kinds whose objects own cache pods: reconciled, and refreshed from their nodes' events.
CACHE_HANDLERS = {cachecluster.KIND: cachecluster}
