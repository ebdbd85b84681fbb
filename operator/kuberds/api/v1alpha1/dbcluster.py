"""DBCluster: a writer and up to 15 readers with writer, reader and custom endpoints (Aurora)."""

from __future__ import annotations

from typing import Literal

from kuberds import engines
from kuberds.api.kinds import SERVER_COLUMNS, Kind, server_name_rules
from kuberds.api.schema import Rule, field, model
from kuberds.api.v1alpha1.common import NAME_PATTERN, Timestamp, version_rule
from kuberds.api.v1alpha1.server import ServerSpec, ServerStatus, common_server_rules


@model(Rule("!(has(self.targetCPUPercent) && has(self.targetConnections))",
             "readerAutoscaling: set targetCPUPercent or targetConnections, not both",
             field_path=".targetConnections"))  # fmt: skip
class ReaderAutoscaling:
    """Add and remove readers with load, like Aurora Auto Scaling: decided by the operator from
    the members' own reports (no Prometheus needed). Average CPU of 70 % when no target is set."""

    min_readers: int = field("Fewest readers (never fewer than the synchronous standby needs).", default=1,
                             minimum=0, maximum=15)  # fmt: skip
    max_readers: int = field("Most readers.", default=3, minimum=1, maximum=15)
    target_cpu_percent: int | None = field("Average reader CPU utilisation (of its class's CPU) to aim for.",
                                           minimum=10, maximum=90)  # fmt: skip
    target_connections: int | None = field("Average client connections per reader to aim for.", minimum=1,
                                           maximum=10000)  # fmt: skip
    scale_out_cooldown_seconds: int = field("Least time between adding readers and the next change.",
                                            default=300, minimum=0, maximum=86400)  # fmt: skip
    scale_in_cooldown_seconds: int = field("Least time between any change and removing a reader.",
                                           default=300, minimum=0, maximum=86400)  # fmt: skip


@model()
class MemberTier:
    """The promotion tier of one member (Aurora's promotion tier): after a failover the writer
    moves to the healthy member with the lowest tier."""

    member: int = field("The member's ordinal (pod NAME-<member>).", minimum=0, maximum=15)
    promotion_tier: int = field("0 (promoted first) to 15 (last).", minimum=0, maximum=15)


# Suffixes of the cluster's own Services (builders.names): a custom endpoint's
# Service <cluster>-<name> must not take one.
RESERVED_ENDPOINT_NAMES = ["ro", "pods"]


@model(Rule("!has(self.staticMembers) || !has(self.excludedMembers) || size(self.staticMembers) == 0 "
            "|| size(self.excludedMembers) == 0",
            "a custom endpoint sets staticMembers or excludedMembers, not both",
            field_path=".excludedMembers"))  # fmt: skip
class CustomEndpoint:
    """An extra Service over a chosen set of the cluster's members (Aurora custom endpoint)."""

    name: str = field("Endpoint name; the Service is <cluster>-<name>.", pattern=NAME_PATTERN, max_length=30,
                      rules=[Rule(f"!(self in {RESERVED_ENDPOINT_NAMES!r}) && !self.startsWith('proxy')",
                                  "a custom endpoint may not be named ro, pods, or proxy…: kuberds names the "
                                  "cluster's own Services so")])  # fmt: skip
    type: Literal["READER", "ANY"] = field("READER: only readers; ANY: the writer too.", default="READER")
    static_members: list[int] = field("Only these member ordinals (empty: every member of the type).",
                                      default_factory=list, max_items=16,
                                      items_minimum=0, items_maximum=15)  # fmt: skip
    excluded_members: list[int] = field("Every member of the type but these ordinals.", default_factory=list,
                                        max_items=16, items_minimum=0, items_maximum=15)  # fmt: skip


def _cluster_spec_rules() -> tuple[Rule, ...]:
    return (
        Rule("!has(self.readerAutoscaling) || self.readerAutoscaling.minReaders <= self.readerAutoscaling.maxReaders",
             "readerAutoscaling.minReaders cannot exceed readerAutoscaling.maxReaders",
             field_path=".readerAutoscaling.minReaders"),
        Rule("!has(self.restore) || !has(self.cloneFrom)", "set only one of restore and cloneFrom",
             field_path=".cloneFrom"),
        Rule("has(self.cloneFrom) == has(oldSelf.cloneFrom)",
             "cloneFrom can only be set when the cluster is created", field_path=".cloneFrom"),
    )  # fmt: skip


@model(*common_server_rules(), *_cluster_spec_rules(), version_rule(engines.versions("database")))
class DBClusterSpec(ServerSpec):
    """A writer plus up to 15 readers with writer, reader and custom endpoints (Aurora). With
    three or more members every commit waits for a reader (strict): the writer's loss loses no
    acknowledged commit; with two, the Multi-AZ rule (synchronous while the reader is there)."""

    readers: int = field("Readers besides the writer (the scale subresource sets it).", default=1, minimum=0,
                         maximum=15)  # fmt: skip
    reader_max_lag_seconds: int = field(
        "The reader endpoint leaves out readers further behind than this.", default=30, minimum=1, maximum=3600
    )
    promotion_tiers: list[MemberTier] = field(
        "Promotion tiers by member ordinal; a member not listed has tier 1.", default_factory=list,
        list_map_keys=("member",), max_items=16,
    )  # fmt: skip
    reader_autoscaling: ReaderAutoscaling | None = field("Scale readers with load.")
    custom_endpoints: list[CustomEndpoint] = field(
        "Extra endpoints over chosen members.", default_factory=list, list_map_keys=("name",), max_items=5
    )
    clone_from: str | None = field(
        "Name of a DBCluster (same namespace) to clone at creation, like an Aurora clone.", pattern=NAME_PATTERN,
        max_length=63,
    )  # fmt: skip


@model()
class ClusterEndpointStatus:
    """One custom endpoint as served now."""

    name: str = field("The endpoint's name in spec.customEndpoints.")
    endpoint: str = field("host:port of its Service.")
    members: list[str] = field("The pods it routes to now.", default_factory=list)


@model()
class DBClusterStatus(ServerStatus):
    """Observed state of a DBCluster."""

    writer: str | None = field("The member that is the writer now (the holder of the leader lease).")
    ready_readers: int | None = field("Readers ready and within readerMaxLagSeconds (the scale subresource reads it).")
    selector: str | None = field("Label selector of the members' pods (the scale subresource reads it).")
    custom_endpoints: list[ClusterEndpointStatus] = field("Custom endpoints as served now.", default_factory=list)
    last_scale_time: Timestamp | None = field("When reader autoscaling last changed spec.readers.")
    last_scale_direction: Literal["out", "in"] | None = field("Whether that change added or removed readers.")


KIND = Kind(
    "DBCluster", "dbclusters", ("dbc",), DBClusterSpec, DBClusterStatus,
    (*SERVER_COLUMNS[:4], ("Writer", "string", ".status.writer", 0), ("Readers", "integer", ".spec.readers", 0),
     ("Ready Readers", "integer", ".status.readyReaders", 0), *SERVER_COLUMNS[4:5], *SERVER_COLUMNS[6:]),
    scale=(".spec.readers", ".status.readyReaders", ".status.selector"), deletion_protected=True,
    object_rules=(*server_name_rules(), Rule(
        "!has(self.spec.customEndpoints) || self.spec.customEndpoints.all(e, "
        "self.metadata.name.size() + 1 + e.name.size() <= 63)",
        "a custom endpoint names the Service <cluster>-<endpoint>, at most 63 characters: shorten the cluster's "
        "name or the endpoint's",
    )),
)  # fmt: skip
