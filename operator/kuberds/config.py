"""Operator-wide settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from kuberds import __version__
from kuberds.engines import INFOS


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str = "kuberds-system"  # where the operator runs (its metrics scraper lives there too)
    # One image per engine (a target of the Dockerfile each), KUBERDS_IMAGE_<ENGINE> overrides.
    images: dict[str, str] = field(default_factory=lambda: {name: f"kuberds/{name}:{__version__}" for name in INFOS})
    image_pull_policy: str = "IfNotPresent"
    final_snapshot_timeout_seconds: int = 3600
    resync_seconds: int = 300  # full drift-correcting pass per object
    # A pass that said why it cannot build (a missing Secret, a bad parameter value, a name
    # taken, a source not ready) looks again after this long.
    retry_seconds: int = 30
    cluster_domain: str = "cluster.local"  # the fully qualified names servers' certificates carry
    # The object store servers use when their spec names none (the chart's backup.objectStore),
    # as the API's ObjectStore in JSON; None: such servers run without backups.
    default_object_store: dict | None = None
    # Storage autoscaling's timings and floor, RDS's by default (shorter in tests): free space
    # must stay low this long, the volume must not have changed for this long, a growth is at
    # least this big; the volumes are looked at this often.
    storage_low_seconds: int = 300
    storage_cooldown_seconds: int = 6 * 3600
    storage_growth_floor: str = "10Gi"
    storage_check_seconds: int = 30
    reader_autoscaling_seconds: int = 30  # how often a DBCluster's readers' load is looked at
    # The growth the last trend_seconds predict for the next horizon_seconds may make a step larger.
    storage_trend_seconds: int = 3600
    storage_horizon_seconds: int = 7 * 3600

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        images = {
            engine: env.get(f"KUBERDS_IMAGE_{engine.upper()}", image) for engine, image in defaults.images.items()
        }
        return cls(
            namespace=env.get("KUBERDS_NAMESPACE", defaults.namespace),
            images=images,
            image_pull_policy=env.get("KUBERDS_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            final_snapshot_timeout_seconds=int(
                env.get("KUBERDS_FINAL_SNAPSHOT_TIMEOUT_SECONDS", defaults.final_snapshot_timeout_seconds)
            ),
            resync_seconds=int(env.get("KUBERDS_RESYNC_SECONDS", defaults.resync_seconds)),
            retry_seconds=int(env.get("KUBERDS_RETRY_SECONDS", defaults.retry_seconds)),
            cluster_domain=env.get("KUBERDS_CLUSTER_DOMAIN") or defaults.cluster_domain,
            default_object_store=json.loads(env["KUBERDS_DEFAULT_OBJECT_STORE"])
            if env.get("KUBERDS_DEFAULT_OBJECT_STORE")
            else None,
            storage_low_seconds=int(env.get("KUBERDS_STORAGE_LOW_SECONDS", defaults.storage_low_seconds)),
            storage_cooldown_seconds=int(
                env.get("KUBERDS_STORAGE_COOLDOWN_SECONDS", defaults.storage_cooldown_seconds)
            ),
            storage_growth_floor=env.get("KUBERDS_STORAGE_GROWTH_FLOOR") or defaults.storage_growth_floor,
            storage_check_seconds=int(env.get("KUBERDS_STORAGE_CHECK_SECONDS", defaults.storage_check_seconds)),
            reader_autoscaling_seconds=int(
                env.get("KUBERDS_READER_AUTOSCALING_SECONDS", defaults.reader_autoscaling_seconds)
            ),
            storage_trend_seconds=int(env.get("KUBERDS_STORAGE_TREND_SECONDS", defaults.storage_trend_seconds)),
            storage_horizon_seconds=int(env.get("KUBERDS_STORAGE_HORIZON_SECONDS", defaults.storage_horizon_seconds)),
        )
