"""The data volume: size, class, autoscaling, and what status says of it."""

from __future__ import annotations

from kuberds.api import rules as cel
from kuberds.api.schema import Quantity, Rule, Timestamp, field, model


@model()
class StorageAutoscaling:
    """Grow the volume automatically when free space runs low (RDS storage autoscaling)."""

    max_size: Quantity = field(
        "Upper limit the volume may grow to, like RDS MaxAllocatedStorage. Must be at least storage.size.",
        example="100Gi",
    )
    free_space_threshold_percent: int = field(
        "Grow when free space has been at or below this share of the volume for 5 minutes (the "
        "operator's setting), and the volume last changed at least 6 hours ago (idem), as RDS does.",
        default=10,
        minimum=5,
        maximum=50,
    )
    increment_percent: int = field(
        "Grow by at least this share of the current size each time (RDS: 10). The operator's growth "
        "floor (10Gi by default, as RDS's) and the growth the last hour predicts for the next 7 hours "
        "may make a step larger; sizes are whole Gi, never past maxSize.",
        default=10,
        minimum=5,
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
    autoscaled_size: Quantity | None = field(
        "Size storage autoscaling grew the volumes to, beyond storage.size (volumes keep it: they never shrink)."
    )
    max_size: Quantity | None = field("storage.autoscaling.maxSize, while autoscaling is on.")
    used: Quantity | None = field("Space used on the fullest volume, as its pod sees its filesystem.")
    free_percent: int | None = field("Free space on the fullest volume, in percent of its filesystem.")
    last_grow_time: Timestamp | None = field("When kuberds last asked for larger volumes (spec or autoscaling).")
