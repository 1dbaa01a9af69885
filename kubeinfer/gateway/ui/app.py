"""The console as a sub-application mounted at `/ui`, sharing the gateway's state.

A sub-application rather than more routers on the gateway keeps its HTML error pages, login redirects
and security headers apart from the API's OpenAI-shaped JSON errors, and its pages out of the OpenAPI
spec. It reads the same `GatewayContext` (keys, stores, batch service) the API routes use.
"""

from __future__ import annotations

from fastapi import FastAPI

from kubeinfer.gateway.ui import batches, files, jobs, login, logs, matrices, models, static
from kubeinfer.gateway.ui.errors import install_page_errors
from kubeinfer.gateway.ui.headers import SecurityHeaders


def create_console(gateway: FastAPI) -> FastAPI:
    """Mount with `gateway.mount("/ui", create_console(gateway))`."""
    console = FastAPI(title="kubeinfer console", openapi_url=None, docs_url=None, redoc_url=None)
    console.state = gateway.state  # the gateway's lifespan puts its GatewayContext there
    console.add_middleware(SecurityHeaders)
    install_page_errors(console)
    for module in (login, batches, files, jobs, models, matrices, logs, static):
        console.include_router(module.router)
    return console
