"""Pieces every kind shares: name rules, the engines' and classes' enums, and small models
(TLS, network, scheduling, monitoring, conditions, members)."""

from __future__ import annotations

from typing import Literal

from kuberds import engines
from kuberds.api import rules as cel
from kuberds.api.classes import CACHE_NODE_TYPES, DB_INSTANCE_CLASSES
from kuberds.api.schema import Rule, Timestamp, field, model

DBEngine = Literal[engines.names("database")]
CacheEngine = Literal[engines.names("cache")]
InstanceClass = Literal[tuple(DB_INSTANCE_CLASSES)]
CacheNodeType = Literal[tuple(CACHE_NODE_TYPES)]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # a Kubernetes object name (DNS label)
IDENTIFIER_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_]*$"  # a database or user name
# Values that end up in configuration files: one line each, nothing a parser would read as more.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
# Names kuberds keeps for itself, whatever the engine, beside those each engine reserves.
KUBERDS_USERNAMES = ("kuberds", "admin", "rdsadmin")
RESERVED_USERNAMES = sorted({*KUBERDS_USERNAMES, *engines.reserved_usernames()})
# Parameters kuberds sets itself: letting a user override them would break HA or backups.
MANAGED_PARAMETERS = engines.managed_parameters()


def version_rule(versions: dict[str, tuple[str, ...]]) -> Rule:
    offered = " || ".join(f"(self.engine == {e!r} && self.engineVersion in {list(v)!r})" for e, v in versions.items())
    listing = "; ".join(f"{e} {', '.join(v)}" for e, v in versions.items())
    return Rule(
        f"!has(self.engineVersion) || {offered}",
        f"engineVersion is not offered for this engine (offered: {listing})",
        field_path=".engineVersion",
    )


@model()
class Tls:
    """TLS for client connections."""

    enabled: bool = field(
        "Serve TLS. kuberds issues a certificate for the endpoints unless certificateSecretName is given.",
        default=True,
    )
    certificate_secret_name: str | None = field(
        "A kubernetes.io/tls Secret (same namespace) to serve instead of the generated certificate.",
        pattern=NAME_PATTERN,
    )
    require: bool = field("Refuse clients that do not use TLS.", default=False)


def label_map(what: str) -> dict:
    """A map of label keys to label values (a node selector, matchLabels): the schema checks
    each value, a CEL rule the keys (a structural schema has no pattern for keys)."""
    return dict(
        default_factory=dict,
        max_properties=32,
        value_pattern=cel.LABEL_VALUE_PATTERN,
        value_max_length=63,
        rules=[Rule(cel.label_keys_valid(), f"{what} keys must be label keys: an optional DNS-subdomain prefix and "
                    "'/', then at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric")],
    )  # fmt: skip


@model(
    Rule("self.operator in ['In', 'NotIn'] ? self.values.size() > 0 : self.values.size() == 0",
         "operator In and NotIn need values; Exists and DoesNotExist take none",
         message_expression="'operator ' + self.operator + (self.operator in ['In', 'NotIn'] ? ' needs at least one "
                            "value' : ' takes no values')"),
)  # fmt: skip
class LabelSelectorRequirement:
    """One label requirement."""

    key: str = field("Label key.", max_length=317, pattern=cel.LABEL_KEY_PATTERN)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = field("How the key relates to the values.")
    values: list[str] = field("Values for In and NotIn.", default_factory=list, max_items=64)


@model()
class LabelSelector:
    """A Kubernetes label selector."""

    match_labels: dict[str, str] = field("Labels that must all match.", **label_map("matchLabels"))
    match_expressions: list[LabelSelectorRequirement] = field(
        "Requirements that must all hold.", default_factory=list, max_items=16
    )


@model(Rule("has(self.namespaceSelector) || has(self.podSelector)",
            "an allowedClients entry needs namespaceSelector, podSelector or both"))  # fmt: skip
class ClientSelector:
    """Which pods may connect. Both selectors together mean: those pods in those namespaces."""

    namespace_selector: LabelSelector | None = field("Namespaces whose pods may connect.")
    pod_selector: LabelSelector | None = field("Pods that may connect (in this namespace, or in the selected ones).")


@model()
class Network:
    """Who may reach the database port (like a security group). Enforced by a NetworkPolicy."""

    allowed_clients: list[ClientSelector] = field(
        "Clients admitted besides the server's own pods and the proxy. Empty means every pod in this namespace.",
        default_factory=list,
        max_items=16,
    )


@model(
    Rule("self.operator != 'Exists' || !has(self.value) || self.value == ''",
         "a toleration with operator Exists matches any value: it takes no value", field_path=".value"),
    Rule("self.operator == 'Exists' || (has(self.key) && self.key != '')",
         "a toleration with operator Equal needs a key (only Exists may match every taint)", field_path=".key"),
    Rule("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
         "tolerationSeconds is only for effect NoExecute", field_path=".tolerationSeconds"),
)  # fmt: skip
class Toleration:
    """A Kubernetes toleration."""

    key: str | None = field("Taint key; empty with operator Exists matches all taints.", max_length=317,
                            pattern=f"^$|{cel.LABEL_KEY_PATTERN}")  # fmt: skip
    operator: Literal["Exists", "Equal"] = field("How key and value are matched.", default="Equal")
    value: str | None = field("Taint value for operator Equal.", max_length=63, pattern=cel.LABEL_VALUE_PATTERN)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = field("Taint effect to tolerate.")
    toleration_seconds: int | None = field("For NoExecute: how long the pod stays after the taint.", minimum=0)


@model()
class Scheduling:
    """Where the database pods may run. Zone spread is always applied on top."""

    node_selector: dict[str, str] = field("Node labels the pods require.", **label_map("nodeSelector"))
    tolerations: list[Toleration] = field("Taints the pods tolerate.", default_factory=list, max_items=16)
    priority_class_name: str | None = field("PriorityClass of the pods.", pattern=NAME_PATTERN)


@model()
class Monitoring:
    """Metrics for Prometheus."""

    enabled: bool = field("Serve engine and agent metrics on port 9187 of each pod.", default=True)


@model()
class Condition:
    """A status condition, as Kubernetes API conventions define it."""

    type: str = field("Condition type: Ready, Available, BackupHealthy, Replicating, StorageResized, Paused, …")
    status: Literal["True", "False", "Unknown"] = field("Status of the condition.")
    reason: str = field("CamelCase reason for the last transition.", default="")
    message: str = field("Human-readable detail.", default="", max_length=4096)
    last_transition_time: Timestamp | None = field("When the status last changed.")
    observed_generation: int | None = field("metadata.generation the condition was computed for.")


@model()
class MemberStatus:
    """One database pod."""

    name: str = field("Pod name.")
    role: str = field("primary, standby, replica, or unknown.", default="unknown")
    zone: str | None = field("Zone of the pod's node.")
    ready: bool = field("Whether the pod is ready to serve.", default=False)
    lag_seconds: float | None = field("A replica's lag behind the writer, in seconds, as its agent reports it.")
    promotion_tier: int | None = field("A DBCluster member's promotion tier (0 is promoted first).")
    synchronous: bool | None = field(
        "A standby's own report: it confirms every commit before the writer acknowledges it, so it may "
        "be promoted without losing one (Multi-AZ and DBCluster fail over only to such a member)."
    )
