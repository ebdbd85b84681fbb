"""The data volume: size, class, autoscaling, and what status says of it."""

from __future__ import annotations

from kuberds.api import rules as cel
from kuberds.api.schema import Quantity, Rule, field, model


@model()
class StorageAutoscaling:
    """Grow the volume automatically when free space runs low (RDS storage autoscaling)."""

    max_size: Quantity = field(
        "Upper limit the volume may grow to, like RDS MaxAllocatedStorage. Must be at least storage.size.",
        example="100Gi",
    )
    free_space_threshold_percent: int = field(
        "Grow when free space falls below this share of the volume.", default=10, minimum=5, maximum=50
    )
    increment_percent: int = field(
        "Grow by this share of the current size (at least 5Gi) each time.",
        default=20,
        minimum=10,
        maximum=100,
    )


@model(
    Rule(
        "!has(self.autoscaling) || !isQuantity(self.autoscaling.maxSize) || !isQuantity(self.size) || "
        + cel.quantity_at_least("self.autoscaling.maxSize", "self.size"),
        "storage.autoscaling.maxSize must be at least storage.size",
        field_path=".autoscaling.maxSize",
        message_expression="'storage.autoscaling.maxSize ' + self.autoscaling.maxSize + ' must be at least "
        "storage.size ' + self.size",
    )
)
class Storage:
    """The data volume (a PersistentVolumeClaim per database pod)."""

    size: Quantity = field(
        "Allocated storage, like RDS AllocatedStorage. May grow (the volume is expanded in place "
        "if its StorageClass allows it), never shrink.",
        default="20Gi",
        rules=[
            Rule("!isQuantity(self) || quantity(self).compareTo(quantity('1Gi')) >= 0",
                 "storage.size must be at least 1Gi",
                 message_expression="'storage.size ' + self + ' is less than 1Gi: it must be at least 1Gi'"),
            Rule("!isQuantity(self) || !isQuantity(oldSelf) || " + cel.quantity_at_least("self", "oldSelf"),
                 "storage.size cannot shrink; volumes only grow",
                 message_expression="'storage.size cannot shrink from ' + oldSelf + ' to ' + self + ': volumes "
                                    "only grow'"),
        ],
    )  # fmt: skip
    storage_class_name: str | None = field(
        "StorageClass of the volumes; the cluster default when omitted. Cannot change.",
        immutable="storage.storageClassName cannot change after creation",
        set_at_creation=True,
    )
    autoscaling: StorageAutoscaling | None = field("Turns storage autoscaling on. Omit to keep the size fixed.")


@model()
class StorageStatus:
    """What the volumes look like."""

    requested: Quantity | None = field("Size requested from the PersistentVolumeClaims.")
    allocated: Quantity | None = field("Smallest capacity the volumes actually have.")
