"""Run the gateway under uvicorn; shared by `kubeinfer gateway serve` and `python -m kubeinfer.gateway`."""

from __future__ import annotations

import os
from typing import Any

from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.logs import configure
from kubeinfer.settings import GatewaySettings, Settings


def settings_with(**overrides: Any) -> Settings:
    """Settings from the environment, with the gateway fields given on the command line on top."""
    settings = Settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if not settings.gateway.api_keys and os.environ.get("KUBEINFER_API_KEYS"):  # the shorter name
        updates["api_keys"] = os.environ["KUBEINFER_API_KEYS"]
    # validate rather than model_copy(update=...), which would keep a CLI string where a Path belongs
    settings.gateway = GatewaySettings.model_validate({**settings.gateway.model_dump(), **updates})
    return settings


def serve(settings: Settings, host: str, port: int, insecure_no_auth: bool, log_level: str = "info") -> None:
    """Blocks until SIGINT/SIGTERM; raises NoApiKeysError before binding when no keys are configured."""
    import uvicorn

    configure(log_level)
    app = create_app(settings, insecure_no_auth=insecure_no_auth)
    uvicorn.run(app, host=host, port=port, log_config=None, log_level=log_level, timeout_graceful_shutdown=10)
