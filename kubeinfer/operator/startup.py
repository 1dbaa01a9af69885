"""What the operator sets up once at start, for every resource's door: kopf's settings and the metrics port."""

from __future__ import annotations

from typing import Any

import kopf

from kubeinfer.metrics.server import serve_metrics
from kubeinfer.resources.names import FINALIZER
from kubeinfer.settings import get_settings


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    settings.posting.level = 20
    settings.persistence.finalizer = FINALIZER
    # Sync daemons (one per matrix, install and batch) each hold a pool thread for their whole run.
    settings.execution.max_workers = get_settings().operator.max_workers
    port = get_settings().operator.metrics_port
    if port:
        try:
            serve_metrics(port)
        except OSError as exc:  # metrics are for watching the operator; a taken port must not stop its work
            logger.error(f"metrics: cannot listen on port {port}: {exc}")
        else:
            logger.info(f"metrics on :{port}/metrics")
