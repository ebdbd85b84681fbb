"""DBCluster: a writer and up to 15 readers with writer, reader and custom endpoints (Aurora)."""

from __future__ import annotations

from typing import Literal

from kuberds import engines
from kuberds.api.kinds import SERVER_COLUMNS, Kind, server_name_rules
from kuberds.api.schema import Rule, field, model
from kuberds.api.v1alpha1.common import NAME_PATTERN, version_rule
from kuberds.api.v1alpha1.server import ServerSpec, ServerStatus, common_server_rules


@model()
class ReaderAutoscaling:
    """Add and remove readers with load, like Aurora Auto Scaling."""

    min_readers: int = field("Fewest readers.", default=1, minimum=0, maximum=15)
    max_readers: int = field("Most readers.", default=3, minimum=1, maximum=15)
    target_cpu_percent: int = field("Average reader CPU utilisation to aim for.", default=70, minimum=10,
                                    maximum=90)  # fmt: skip


@model()
class CustomEndpoint:
    """An extra Service over a chosen set of the cluster's instances (Aurora custom endpoint)."""

    name: str = field("Endpoint name; the Service is <cluster>-<name>.", pattern=NAME_PATTERN, max_length=30)
    type: Literal["READER", "ANY"] = field("READER: only readers; ANY: writer and readers.", default="READER")
    static_members: list[int] = field("Instance ordinals always included (empty: all that match type).",
                                      default_factory=list, max_items=16)  # fmt: skip
    excluded_members: list[int] = field("Instance ordinals never included.", default_factory=list, max_items=16)


def _cluster_spec_rules() -> tuple[Rule, ...]:
    return (
        Rule("!self.zeroDataLoss || self.instances >= 3",
             "zeroDataLoss needs instances >= 3: with two, losing one would block every write",
             field_path=".zeroDataLoss"),
        Rule("!has(self.readerAutoscaling) || self.readerAutoscaling.minReaders <= self.readerAutoscaling.maxReaders",
             "readerAutoscaling.minReaders cannot exceed readerAutoscaling.maxReaders",
             field_path=".readerAutoscaling.minReaders"),
        Rule("!has(self.restore) || !has(self.restore.fromSnapshot) || !has(self.cloneFrom)",
             "set only one of restore and cloneFrom", field_path=".cloneFrom"),
        Rule("has(self.cloneFrom) == has(oldSelf.cloneFrom)",
             "cloneFrom can only be set when the cluster is created", field_path=".cloneFrom"),
    )  # fmt: skip


@model(*common_server_rules(), *_cluster_spec_rules(), version_rule(engines.versions("database")))
class DBClusterSpec(ServerSpec):
    """A writer plus up to 15 readable replicas with writer, reader and custom endpoints (Aurora)."""

    instances: int = field(
        "Database pods: one writer and instances-1 readers, spread across zones.", default=2, minimum=1,
        maximum=16,
    )  # fmt: skip
    zero_data_loss: bool = field(
        "Acknowledge a commit only once a standby has it, and never promote one that may lack it "
        "(synchronous_mode_strict with quorum). Needs instances >= 3.",
        default=False,
    )
    reader_autoscaling: ReaderAutoscaling | None = field("Scale readers with load.")
    custom_endpoints: list[CustomEndpoint] = field(
        "Extra endpoints over chosen instances.", default_factory=list, list_map_keys=("name",), max_items=5
    )
    clone_from: str | None = field(
        "Name of a DBCluster (same namespace) to clone at creation, like an Aurora clone.", pattern=NAME_PATTERN,
        max_length=63,
    )  # fmt: skip


KIND = Kind(
    "DBCluster", "dbclusters", ("dbc",), DBClusterSpec, ServerStatus,
    (*SERVER_COLUMNS[:3], ("Instances", "integer", ".spec.instances", 0), *SERVER_COLUMNS[3:]),
    scale_replicas=".spec.instances", deletion_protected=True,
    object_rules=(*server_name_rules(), Rule(
        "!has(self.spec.customEndpoints) || self.spec.customEndpoints.all(e, "
        "self.metadata.name.size() + 1 + e.name.size() <= 63)",
        "a custom endpoint names the Service <cluster>-<endpoint>, at most 63 characters: shorten the cluster's "
        "name or the endpoint's",
    )),
)  # fmt: skip
