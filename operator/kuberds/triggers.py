"""Every Kopf decorator of kuberds lives here, so all triggers read in one place.

Each trigger is one line that calls a thin handler in kuberds.handlers.<kind>. The
handlers arrive with the API issue; the foundation only wires the operator up.
"""

from __future__ import annotations

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    # Finalizers and progress annotations under our own group, not Kopf's defaults.
    settings.persistence.finalizer = "kuberds.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kuberds.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kuberds.io", key="last-handled-configuration"
    )
    settings.posting.level = 20  # INFO and above become Kubernetes Events
