"""A DBCluster's objects: one server of a writer and `readers` members (Aurora). Pure.

Durability by size: with three or more members every commit waits for a reader, strictly
(Patroni's synchronous_mode_strict), so losing the writer loses no acknowledged commit and
losing a reader leaves another to confirm; with two, the Multi-AZ rule (synchronous while
the reader is there, writes go on without it); one member is a single server.
"""

from __future__ import annotations

from kuberds.api import v1alpha1 as api
from kuberds.builders.dbinstance import server_objects
from kuberds.builders.meta import Owner
from kuberds.builders.server import Server, database_server
from kuberds.config import OperatorConfig
from kuberds.engines import Engine

DEFAULT_TIER = 1  # Aurora's default promotion tier
STRICT_FROM = 3  # members from which commits wait for a reader even when one is lost

__all__ = ["DEFAULT_TIER", "cluster_server", "member_problems", "server_objects", "tier_of"]


def cluster_server(owner: Owner, spec: api.DBClusterSpec, engine: Engine, config: OperatorConfig, *,
                   members: int | None = None, **passed: object) -> Server:  # fmt: skip
    """`members`: how many to keep now, when scaling in must wait for the writer to move."""
    members = max(members or 0, 1 + spec.readers)
    return database_server(
        owner, spec, engine, config, replicas=members, synchronous=members >= 2,
        synchronous_strict=members >= STRICT_FROM, scale_in_deletes_volumes=True, zones_required=True,
        hosts_required=False,
        promotion_tiers=tuple(tier_of(spec, ordinal) for ordinal in range(members)),
        custom_endpoints=tuple(spec.custom_endpoints), reader_max_lag_seconds=spec.reader_max_lag_seconds, **passed,
    )  # fmt: skip


def tier_of(spec: api.DBClusterSpec, ordinal: int) -> int:
    return next((t.promotion_tier for t in spec.promotion_tiers if t.member == ordinal), DEFAULT_TIER)


def member_problems(spec: api.DBClusterSpec) -> list[str]:
    """What the schema cannot judge, since spec.readers moves: custom endpoints naming members
    that do not exist. (A tier for a member not there yet is kept for when it is.)"""
    members, problems = 1 + spec.readers, []
    for endpoint in spec.custom_endpoints:
        missing = sorted({*endpoint.static_members, *endpoint.excluded_members} - set(range(members)))
        if missing:
            problems.append(f"customEndpoints {endpoint.name} names member(s) {', '.join(map(str, missing))}, "
                            f"but the cluster has members 0-{members - 1}")  # fmt: skip
    return problems
