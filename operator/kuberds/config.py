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
    cluster_domain: str = "cluster.local"  # the fully qualified names servers' certificates carry
    # The object store servers use when their spec names none (the chart's backup.objectStore),
    # as the API's ObjectStore in JSON; None: such servers run without backups.
    default_object_store: dict | None = None

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
            cluster_domain=env.get("KUBERDS_CLUSTER_DOMAIN") or defaults.cluster_domain,
            default_object_store=json.loads(env["KUBERDS_DEFAULT_OBJECT_STORE"])
            if env.get("KUBERDS_DEFAULT_OBJECT_STORE")
            else None,
        )
