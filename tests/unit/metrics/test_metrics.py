"""Metric names and labels follow Prometheus conventions; the pure helpers count what they should."""

from __future__ import annotations

import json
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubeinfer.gateway.metrics import MetricsMiddleware
from kubeinfer.gateway.metrics import router as metrics_router
from kubeinfer.metrics import batch, bench, gateway, operator
from kubeinfer.metrics.usage import TokenUsage, usage_of
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult, Rule

#: Labels that would make a series per request, file, batch or tenant.
FORBIDDEN_LABELS = {"custom_id", "id", "batch_id", "request_id", "file_id", "project", "api_key", "path", "prompt"}
#: Name parts that are not base units (Prometheus wants seconds, bytes, ratios).
NON_BASE_UNITS = re.compile(r"_(milliseconds|ms|microseconds|minutes|hours|days|kb|mb|gb|kib|mib|gib|percent)(_|$)")
MODULES = (batch, bench, gateway, operator)


def ours() -> dict[str, str]:
    """Exposed name -> type of every kubeinfer_ family in the default registry."""
    text = generate_latest(REGISTRY).decode()
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)
        if m.group(1).startswith("kubeinfer_")
    }


def test_every_component_defines_metrics_with_the_kubeinfer_prefix() -> None:
    names = ours()
    for prefix in ("kubeinfer_gateway_", "kubeinfer_batch_", "kubeinfer_bench_", "kubeinfer_operator_"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert all(re.fullmatch(r"kubeinfer_[a-z0-9_]+", n) for n in names)


def test_counters_end_in_total_and_nothing_else_does() -> None:
    for name, kind in ours().items():
        assert (kind == "counter") == name.endswith("_total"), (name, kind)


def test_names_use_base_units() -> None:
    for name, kind in ours().items():
        assert not NON_BASE_UNITS.search(name), name
        if kind == "histogram" and ("duration" in name or "time" in name):
            assert name.endswith("_seconds"), name


def test_no_label_names_a_request_a_batch_or_a_tenant() -> None:
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        if not family.name.startswith("kubeinfer_"):
            continue
        for sample in family.samples:
            assert not set(sample.labels) & FORBIDDEN_LABELS, (family.name, sample.labels)


def test_every_metric_has_help_text() -> None:
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        if family.name.startswith("kubeinfer_"):
            assert len(family.documentation) > 15, family.name


# --- usage ----------------------------------------------------------------------------------------------------


def test_usage_prefers_openai_usage_with_cached_tokens() -> None:
    body = {"usage": {"prompt_tokens": 31, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 30}}}
    assert usage_of(body) == TokenUsage(31, 5, 30)


def test_usage_falls_back_to_llama_server_timings() -> None:
    body = {"timings": {"cache_n": 30, "prompt_n": 1, "predicted_n": 3}}
    assert usage_of(body) == TokenUsage(prompt=31, completion=3, cached_prompt=30)


@pytest.mark.parametrize("body", [{"error": {"message": "no"}}, [], None, {"usage": None}])
def test_usage_of_an_answer_without_counts_is_none(body: object) -> None:
    assert usage_of(body) is None


# --- streams --------------------------------------------------------------------------------------------------


def sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(text: str | None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def test_stream_meter_times_tokens_across_split_chunks() -> None:
    meter = gateway.StreamMeter("chat/completions", started=10.0)
    first = sse(delta(None)) + sse(delta("Hel"))
    meter.feed(first[:7], 10.1)  # an event cut mid-line waits for its end
    meter.feed(first[7:], 10.5)
    meter.feed(sse(delta("lo")) + sse(delta(" there")), 11.5)
    final = {"choices": [{"index": 0, "delta": {}}], "timings": {"cache_n": 4, "prompt_n": 6, "predicted_n": 3}}
    meter.feed(sse(final) + b"data: [DONE]\n\n", 11.6)
    assert meter.tokens == 3
    assert meter.ttft_seconds == pytest.approx(0.5)
    assert meter.tokens_per_second == pytest.approx(2.0)
    assert meter.usage == TokenUsage(prompt=10, completion=3, cached_prompt=4)


def test_stream_meter_reads_completion_text_and_crlf() -> None:
    meter = gateway.StreamMeter("completions", started=0.0)
    meter.feed(b'data: {"choices": [{"text": "a"}]}\r\n\r\n', 1.0)
    assert meter.tokens == 1
    assert meter.tokens_per_second is None


def test_finished_stream_without_counts_records_the_relayed_tokens() -> None:
    labels = {"endpoint": "completions", "kind": "completion"}
    before = REGISTRY.get_sample_value("kubeinfer_gateway_tokens_total", labels) or 0.0
    meter = gateway.StreamMeter("completions", started=0.0)
    meter.feed(sse({"choices": [{"text": "a"}]}) + sse({"choices": [{"text": "b"}]}), 1.0)
    meter.finish()
    assert REGISTRY.get_sample_value("kubeinfer_gateway_tokens_total", labels) == before + 2


# --- gateway middleware ---------------------------------------------------------------------------------------


def test_requests_are_labelled_by_route_template_never_by_raw_path() -> None:
    app = FastAPI()
    app.add_middleware(MetricsMiddleware)
    app.include_router(metrics_router)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    client = TestClient(app)
    assert client.get("/v1/things/secret-id-123").status_code == 200
    assert client.get("/nowhere/else-456").status_code == 404
    page = client.get("/metrics").text
    assert 'route="/v1/things/{thing_id}"' in page
    assert 'code="404",method="GET",route="unmatched"' in page
    assert "secret-id-123" not in page
    assert "else-456" not in page


# --- operator -------------------------------------------------------------------------------------------------


def cell(quant: str, status: CellStatus, rule: Rule | None = None, **profiles: ProfileResult) -> CellResult:
    return CellResult(
        model="m", quantization=quant, model_size_b=0.1, status=status, rule=rule, load_seconds=2.0, profiles=profiles
    )


def gauge(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_cells_by_status_and_rule_drop_to_zero_when_a_cell_moves_on() -> None:
    operator.publish_cells("ns/a", [cell("Q4", CellStatus.pending), cell("Q8", CellStatus.pending)])
    assert gauge("kubeinfer_operator_cells", matrix="ns/a", status="pending", rule="") == 2
    operator.publish_cells(
        "ns/a", [cell("Q4", CellStatus.skipped, Rule.preflight_memory), cell("Q8", CellStatus.pending)]
    )
    assert gauge("kubeinfer_operator_cells", matrix="ns/a", status="pending", rule="") == 1
    assert gauge("kubeinfer_operator_cells", matrix="ns/a", status="skipped", rule="preflight_memory") == 1
    operator.publish_cells("ns/a", [cell("Q4", CellStatus.skipped, Rule.preflight_memory)] * 2)
    assert gauge("kubeinfer_operator_cells", matrix="ns/a", status="pending", rule="") == 0


def test_phase_clock_splits_a_cell_into_prepare_serve_and_measure() -> None:
    clock = operator.PhaseClock()
    clock.cell_started(100.0)
    clock.server_ready(130.0)
    clock.server_ready(140.0)  # a second server (stress) does not move the boundary
    result = cell("Q4", CellStatus.passed)  # load_seconds 2.0
    assert clock.phases(result, 150.0) == {"prepare": 28.0, "serve": 2.0, "measure": 20.0}
    assert clock.phases(result, 160.0) == {}  # no start seen: a cell resumed mid-way


def test_phase_clock_puts_a_cell_that_never_served_in_prepare() -> None:
    clock = operator.PhaseClock()
    clock.cell_started(10.0)
    assert clock.phases(cell("Q4", CellStatus.skipped, Rule.preflight_memory), 12.5) == {"prepare": 2.5}


def test_benchmark_results_are_gauges_per_cell_and_profile() -> None:
    interactive = ProfileResult(
        status="passed", rating="good", metrics={"tokens_per_second": 95.5, "ttft_seconds": 0.4, "runs": 1}
    )
    skipped = ProfileResult(status="skipped", reason="stress elsewhere")
    bench.publish_results(
        "ns/b", [cell("Q4", CellStatus.passed, interactive=interactive, stress=skipped), cell("Q8", CellStatus.pending)]
    )
    labels = {"matrix": "ns/b", "model": "m", "quantization": "Q4", "profile": "interactive"}
    assert gauge("kubeinfer_bench_tokens_per_second", **labels) == 95.5
    assert gauge("kubeinfer_bench_time_to_first_token_seconds", **labels) == 0.4
    assert gauge("kubeinfer_bench_rating", **labels) == bench.RATING_SCORES["good"]
    assert gauge("kubeinfer_bench_profile_passed", **labels) == 1
    assert gauge("kubeinfer_bench_profile_passed", **{**labels, "profile": "stress"}) is None
    assert gauge("kubeinfer_bench_load_seconds", matrix="ns/b", model="m", quantization="Q8") is None


def test_batch_progress_is_a_ratio() -> None:
    batch.record_progress(3, 4)
    assert gauge("kubeinfer_batch_progress_ratio") == 0.75
    batch.record_progress(0, 0)
    assert gauge("kubeinfer_batch_progress_ratio") == 0
