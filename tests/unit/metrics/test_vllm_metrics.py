"""vLLM-compatible metrics (kubeinfer.metrics.vllm): vLLM's names, labels and buckets, fed by streams and answers."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from kubeinfer.metrics import vllm
from kubeinfer.metrics.gateway import StreamMeter, record_answer
from kubeinfer.metrics.usage import TokenUsage

MODEL = "unit-model"


def value(name: str, model: str = MODEL, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, {"model_name": model, "engine": vllm.LLAMACPP, **labels})
    return found or 0.0


def bounds(name: str) -> list[float]:
    """The finite upper bounds of a histogram, as exported."""
    for metric in REGISTRY.collect():
        if metric.name == name:
            return sorted({float(s.labels["le"]) for s in metric.samples if "le" in s.labels} - {float("inf")})
    raise AssertionError(f"{name} is not registered")


def sse(*events: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def test_one_two_five_buckets_are_vllm_s() -> None:
    assert vllm.build_1_2_5_buckets(100) == [1, 2, 5, 10, 20, 50, 100]
    assert vllm.build_1_2_5_buckets(131072)[-1] == 100000


def test_histograms_carry_vllm_s_bucket_layouts() -> None:
    vllm.observe_stream_tokens("bucket-probe", 0.1, [0.02])
    timings = vllm.EngineTimings(0.1, 0.2, 3)
    vllm.observe_finished("bucket-probe", 1.0, TokenUsage(3, 3), timings, "stop")
    assert bounds("vllm:time_to_first_token_seconds") == [
        *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
        *(20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
    ]
    token_latency = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0]
    assert bounds("vllm:inter_token_latency_seconds") == [*token_latency, 40.0, 80.0]
    assert bounds("vllm:time_per_output_token_seconds") == [*token_latency, 40.0, 80.0]
    request = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0]
    for name in ("e2e_request_latency", "request_queue_time", "request_prefill_time", "request_decode_time"):
        assert bounds(f"vllm:{name}_seconds") == [*request, 480.0, 960.0, 1920.0, 7680.0]
    assert bounds("vllm:request_prompt_tokens") == [float(b) for b in vllm.build_1_2_5_buckets(131072)]


def test_every_vllm_family_is_labelled_by_model_name_and_engine_only() -> None:
    vllm.observe_stream_tokens("label-probe", 0.1, [0.02])
    families = [m for m in REGISTRY.collect() if m.name.startswith("vllm:")]
    assert len(families) >= 15
    for family in families:
        for sample in family.samples:
            extra = set(sample.labels) - {"model_name", "engine", "le", "finished_reason"}
            assert not extra, (family.name, extra)


def test_a_llama_server_stream_records_ttft_inter_token_latency_and_the_finished_request() -> None:
    meter = StreamMeter("chat/completions", started=10.0, model=MODEL)
    assert value("vllm:num_requests_running") == 1
    before = {n: value(n) for n in ("vllm:inter_token_latency_seconds_count", "vllm:e2e_request_latency_seconds_sum")}
    ttft_before = value("vllm:time_to_first_token_seconds_count")
    stop_before = value("vllm:request_success_total", finished_reason="stop")
    hits_before = value("vllm:prefix_cache_hits_total")
    meter.feed(sse({"choices": [{"delta": {"content": "Hi"}}]}), at=10.5)
    meter.feed(sse({"choices": [{"delta": {"content": " there"}}]}), at=10.75)
    last = {
        "choices": [{"delta": {"content": "!"}, "finish_reason": "stop"}],
        "timings": {"prompt_n": 4, "prompt_ms": 200.0, "predicted_n": 3, "predicted_ms": 400.0, "cache_n": 6},
    }
    meter.feed(sse(last), at=11.0)
    meter.finish(at=11.5)
    assert value("vllm:num_requests_running") == 0
    assert value("vllm:time_to_first_token_seconds_count") == ttft_before + 1
    assert value("vllm:inter_token_latency_seconds_count") == before["vllm:inter_token_latency_seconds_count"] + 2
    assert value("vllm:e2e_request_latency_seconds_sum") == pytest.approx(
        before["vllm:e2e_request_latency_seconds_sum"] + 1.5
    )
    assert value("vllm:request_success_total", finished_reason="stop") == stop_before + 1
    assert value("vllm:prefix_cache_hits_total") == hits_before + 6  # llama-server's cache_n


def test_a_stream_broken_off_before_its_last_chunk_records_no_finished_request() -> None:
    model = "broken-off"
    meter = StreamMeter("chat/completions", started=0.0, model=model)
    meter.feed(sse({"choices": [{"delta": {"content": "Hi"}}]}), at=0.5)
    meter.finish(at=0.6)
    assert value("vllm:num_requests_running", model) == 0
    assert value("vllm:e2e_request_latency_seconds_count", model) == 0
    assert value("vllm:time_to_first_token_seconds_count", model) == 0


def test_a_plain_answer_records_queue_prefill_decode_and_tokens_from_llama_server_timings() -> None:
    model = "plain-answer"
    answer = {
        "choices": [{"message": {"content": "ok"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        "timings": {"prompt_n": 10, "prompt_ms": 250.0, "predicted_n": 5, "predicted_ms": 1000.0, "cache_n": 0},
    }
    record_answer("chat/completions", model, json.dumps(answer).encode(), 2.0)
    assert value("vllm:request_queue_time_seconds_sum", model) == pytest.approx(0.75)
    assert value("vllm:request_prefill_time_seconds_sum", model) == pytest.approx(0.25)
    assert value("vllm:request_decode_time_seconds_sum", model) == pytest.approx(1.0)
    assert value("vllm:request_time_per_output_token_seconds_sum", model) == pytest.approx(0.25)
    assert value("vllm:request_generation_tokens_sum", model) == 5
    assert value("vllm:prompt_tokens_total", model) == 10
    assert value("vllm:prefix_cache_queries_total", model) == 10
    assert value("vllm:request_success_total", model, finished_reason="length") == 1
    assert value("vllm:time_to_first_token_seconds_count", model) == 0  # only a stream shows its first token


def test_an_answer_without_llama_server_timings_is_not_recorded_as_llama_cpp() -> None:
    model = "vllm-replica"
    answer = {"choices": [{"finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    record_answer("chat/completions", model, json.dumps(answer).encode(), 1.0)
    assert value("vllm:e2e_request_latency_seconds_count", model) == 0


@pytest.mark.parametrize(("reason", "expected"), [("length", "length"), ("tool_calls", "stop"), ("stop", "stop")])
def test_finish_reasons_map_to_vllm_s(reason: str, expected: str) -> None:
    assert vllm.finish_reason_of({"choices": [{"finish_reason": reason}]}) == expected
