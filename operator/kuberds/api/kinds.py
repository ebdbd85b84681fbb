"""A kind of the API, as the CRD generator, the API wrapper and the triggers see it.

Each kind's module in kuberds.api.v1alpha1 declares its `KIND`; kuberds.api.v1alpha1.KINDS
lists them all, and everything that needs "every kind" reads that list.
"""

from __future__ import annotations

from dataclasses import dataclass

from kuberds import API_GROUP
from kuberds.api.schema import Rule

Column = tuple[str, str, str, int]  # printer column: name, type, jsonPath, priority


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type
    status: type
    columns: tuple[Column, ...]
    # The scale subresource: (spec replicas, status replicas, status label selector) paths.
    scale: tuple[str, str, str] | None = None
    deletion_protected: bool = False
    # Rules on the whole object (metadata.name among them), at the root of the CRD's schema.
    object_rules: tuple[Rule, ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"

    @property
    def owner_label(self) -> str:
        """The value of kuberds.io/owner-kind on the objects built for this kind."""
        return self.kind.lower()


SERVER_COLUMNS: tuple[Column, ...] = (
    ("Engine", "string", ".spec.engine", 0),
    ("Version", "string", ".status.engineVersion", 0),
    ("Class", "string", ".spec.instanceClass", 1),
    ("Status", "string", ".status.phase", 0),
    ("Endpoint", "string", ".status.endpoint", 0),
    ("Primary", "string", ".status.currentPrimary", 1),
    ("Proxy", "string", ".status.proxyEndpoint", 1),
    ("Age", "date", ".metadata.creationTimestamp", 0),
)

# A server's name becomes its Services' (DNS-1035 labels: a letter first, no dots) and its
# StatefulSet's, whose pods are labelled controller-revision-hash=NAME-<10 characters>, a
# label value of at most 63: so at most 52 characters.
SERVER_NAME_MAX = 52
SERVER_NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


def server_name_rules() -> tuple[Rule, ...]:
    # No quotes in the words: they go into a CEL string too.
    words = (f"at most {SERVER_NAME_MAX} characters, a lower-case letter first, then lower-case letters, digits "
             "or hyphens, ending with a letter or digit, no dots: kuberds names the Services, StatefulSet, pods "
             "and Secrets of the server after it")  # fmt: skip
    return (
        Rule(f"self.metadata.name.size() <= {SERVER_NAME_MAX} && "
             f"self.metadata.name.matches({SERVER_NAME_PATTERN!r})",
             f"metadata.name must have {words}",
             message_expression=f"'metadata.name ' + self.metadata.name + ' must have {words}'"),
    )  # fmt: skip
