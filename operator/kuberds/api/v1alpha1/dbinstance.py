"""DBInstance: one PostgreSQL, MySQL or MariaDB server; multiAZ adds a synchronous standby (RDS)."""

from __future__ import annotations

from kuberds import engines
from kuberds.api.kinds import SERVER_COLUMNS, Kind, server_name_rules
from kuberds.api.schema import field, model
from kuberds.api.v1alpha1.common import version_rule
from kuberds.api.v1alpha1.server import ServerSpec, ServerStatus, common_server_rules


@model(*common_server_rules(), version_rule(engines.versions("database")))
class DBInstanceSpec(ServerSpec):
    """A PostgreSQL, MySQL or MariaDB server; multiAZ adds a synchronous standby in another zone."""

    multi_az: bool = field(
        "Run a synchronous standby in another zone behind the same endpoint, like RDS Multi-AZ.",
        default=False,
    )


KIND = Kind(
    "DBInstance", "dbinstances", ("dbi", "rdsi"), DBInstanceSpec, ServerStatus,
    (*SERVER_COLUMNS[:3], ("Multi-AZ", "boolean", ".spec.multiAZ", 0), *SERVER_COLUMNS[3:]),
    deletion_protected=True, object_rules=server_name_rules(),
)  # fmt: skip
