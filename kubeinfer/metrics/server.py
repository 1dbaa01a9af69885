"""The operator's `/metrics` page, always in the classic text format.

prometheus_client's own server negotiates: Prometheus 3 asks for OpenMetrics, and the client then escapes
metric names, turning vLLM's `vllm:e2e_request_latency_seconds` into `vllm_e2e_request_latency_seconds`, so
the dashboards' vLLM-named queries found nothing. The text format keeps the names as registered, as the
gateway's `/metrics` route does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
#: In a pod, Prometheus scrapes the pod IP.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_args: Any) -> None:
        return None


def text_metrics_app(
    registry: CollectorRegistry = REGISTRY,
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /metrics has the metrics\n"]
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_metrics(port: int, address: str = ALL_INTERFACES, registry: CollectorRegistry = REGISTRY) -> WSGIServer:
    """Serve `registry` on `address:port` from a daemon thread; returns the server (its `server_port`)."""
    server = make_server(address, port, text_metrics_app(registry), _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
