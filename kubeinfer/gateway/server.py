"""Run the gateway under uvicorn; shared by `kubeinfer gateway serve` and `python -m kubeinfer.gateway`."""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from fastapi import FastAPI

from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.connections import guarded_protocol, plan_limits, raise_fd_limit
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


def uvicorn_config(app: FastAPI, settings: Settings, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """uvicorn with the gateway's connection limits: header deadline, keep-alive, a cap within the fd limit."""
    gw = settings.gateway
    limits = plan_limits(raise_fd_limit(), gw.max_connections, gw.fd_reserve)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits.max_connections, gw.header_timeout_seconds),
        backlog=limits.backlog,
        timeout_keep_alive=gw.keep_alive_seconds,  # type: ignore[arg-type]  # call_later takes a float
        h11_max_incomplete_event_size=64 * 1024,
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )


def serve(settings: Settings, host: str, port: int, insecure_no_auth: bool, log_level: str = "info") -> None:
    """Blocks until SIGINT/SIGTERM; raises NoApiKeysError before binding when no keys are configured."""
    configure(log_level)
    app = create_app(settings, insecure_no_auth=insecure_no_auth)
    uvicorn.Server(uvicorn_config(app, settings, host, port, log_level)).run()
