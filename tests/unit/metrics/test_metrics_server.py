"""The operator's /metrics keeps vLLM's colon names whatever format Prometheus asks for.

prometheus_client's own server answers Prometheus 3's OpenMetrics request with escaped names
(`vllm_e2e_request_latency_seconds`), which no dashboard query matches; kubeinfer.metrics.server does not negotiate.
"""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Histogram

from kubeinfer.metrics.server import serve_metrics

#: What Prometheus 3 sends when it scrapes (its default scrape protocols).
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=underscores;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def test_colon_names_survive_a_prometheus_3_scrape() -> None:
    registry = CollectorRegistry()
    Histogram("vllm:e2e_request_latency_seconds", "e2e", ["model_name"], registry=registry).labels("m").observe(1.0)
    server = serve_metrics(0, "127.0.0.1", registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        page = httpx.get(f"{url}/metrics", headers={"Accept": PROMETHEUS_3_ACCEPT}, timeout=10)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/plain")
        assert 'vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 1.0' in page.text
        assert "vllm_e2e" not in page.text
        assert httpx.get(f"{url}/other", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
