"""`/metrics` for Prometheus, and the ASGI middleware that counts and times every request.

`/metrics` needs no API key: scrapers (Prometheus, a ServiceMonitor) carry no bearer token by default,
and nothing exported names a project, a key, a file or a request (docs/metrics.md). Restrict it at the
network level (NetworkPolicy, or not exposing the port) where even aggregate counts are sensitive.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubeinfer.metrics import gateway as metrics

router = APIRouter(tags=["metrics"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _route(scope: Scope) -> str:
    """The matched route's template (`/v1/batches/{batch_id}`), never the raw path with its ids."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else metrics.UNMATCHED_ROUTE


class MetricsMiddleware:
    """Requests by method, route template and status code, and their duration until the last byte is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_and_note(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            metrics.REQUESTS_IN_FLIGHT.dec()
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = _route(scope)
            metrics.REQUESTS.labels(method, route, str(code)).inc()
            metrics.REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
