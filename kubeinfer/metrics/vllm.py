"""vLLM's serving metrics for the llama.cpp requests kubeinfer relays: vLLM's names, labels, units and buckets.

llama-server exports counters and gauges but no latency histograms, so the gateway's proxy and the batch
workers measure each request where they see it and record it exactly as vLLM's PrometheusStatLogger
(vllm/v1/metrics/loggers.py) does: a vLLM dashboard's PromQL then works unchanged on llama.cpp models.
`model_name` is the served model, `engine` names the engine kind (vLLM's own series carry the engine index
there, `0`), so both engines stand side by side and `engine` tells them apart. docs/metrics.md maps each one.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge, Histogram

from kubeinfer.metrics import families as f
from kubeinfer.metrics.families import FINISH_REASONS as FINISH_REASONS
from kubeinfer.metrics.families import LLAMACPP as LLAMACPP
from kubeinfer.metrics.families import MAX_MODEL_LEN as MAX_MODEL_LEN
from kubeinfer.metrics.families import build_1_2_5_buckets as build_1_2_5_buckets
from kubeinfer.metrics.observations import EngineTimings as EngineTimings
from kubeinfer.metrics.observations import vllm_contributions
from kubeinfer.metrics.registered import apply, counter, gauge, histogram
from kubeinfer.metrics.usage import TokenUsage

LABELS = list(f.VLLM_LABELS)

TIME_TO_FIRST_TOKEN = Histogram(
    "vllm:time_to_first_token_seconds",
    "Histogram of time to first token in seconds.",
    LABELS,
    buckets=f.TTFT_BUCKETS,
)
INTER_TOKEN_LATENCY = Histogram(
    "vllm:inter_token_latency_seconds",
    "Histogram of inter-token latency in seconds.",
    LABELS,
    buckets=f.TOKEN_LATENCY_BUCKETS,
)
# vLLM 0.11 renamed it to inter_token_latency_seconds; older dashboards still query the old name.
TIME_PER_OUTPUT_TOKEN = Histogram(
    "vllm:time_per_output_token_seconds",
    "Histogram of time per output token in seconds. DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
    LABELS,
    buckets=f.TOKEN_LATENCY_BUCKETS,
)
# The families a batch request feeds too are specs in kubeinfer.metrics.families, shared with the operator.
REQUEST_TIME_PER_OUTPUT_TOKEN = histogram(f.REQUEST_TIME_PER_OUTPUT_TOKEN)
E2E_REQUEST_LATENCY = histogram(f.E2E_REQUEST_LATENCY)
REQUEST_QUEUE_TIME = histogram(f.REQUEST_QUEUE_TIME)
REQUEST_INFERENCE_TIME = histogram(f.REQUEST_INFERENCE_TIME)
REQUEST_PREFILL_TIME = histogram(f.REQUEST_PREFILL_TIME)
REQUEST_DECODE_TIME = histogram(f.REQUEST_DECODE_TIME)
REQUEST_PROMPT_TOKENS = histogram(f.REQUEST_PROMPT_TOKENS)
REQUEST_GENERATION_TOKENS = histogram(f.REQUEST_GENERATION_TOKENS)
PROMPT_TOKENS = counter(f.PROMPT_TOKENS)
GENERATION_TOKENS = counter(f.GENERATION_TOKENS)
REQUEST_SUCCESS = counter(f.REQUEST_SUCCESS)
PREFIX_CACHE_QUERIES = counter(f.PREFIX_CACHE_QUERIES)
PREFIX_CACHE_HITS = counter(f.PREFIX_CACHE_HITS)
REQUESTS_RUNNING = gauge(f.REQUESTS_RUNNING)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def timings_of(body: Any) -> EngineTimings | None:
    """llama-server's `timings` of an answer or a stream's last chunk; None from an engine without them."""
    timings = body.get("timings") if isinstance(body, dict) else None
    if not isinstance(timings, dict):
        return None
    prompt_ms, predicted_ms = _number(timings.get("prompt_ms")), _number(timings.get("predicted_ms"))
    if prompt_ms is None or predicted_ms is None:
        return None
    return EngineTimings(prompt_ms / 1000, predicted_ms / 1000, int(_number(timings.get("predicted_n")) or 0))


def finish_reason_of(body: Any) -> str | None:
    """vLLM's finished_reason of an answer (or a stream chunk): `length`, or `stop` for any other end."""
    for choice in (body.get("choices") or []) if isinstance(body, dict) else []:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if isinstance(reason, str) and reason:
            return "length" if reason == "length" else "stop"
    return None


def running(model: str) -> Gauge:
    """The running-requests gauge of `model`: `inc()` when a request goes to the engine, `dec()` when it ends."""
    return REQUESTS_RUNNING.labels(model, LLAMACPP)


def observe_stream_tokens(model: str, first_token_seconds: float | None, gaps: list[float]) -> None:
    """A stream's time to first token and each gap between two relayed tokens, as vLLM observes them."""
    labels = (model, LLAMACPP)
    if first_token_seconds is not None:
        TIME_TO_FIRST_TOKEN.labels(*labels).observe(first_token_seconds)
    inter_token, per_output_token = INTER_TOKEN_LATENCY.labels(*labels), TIME_PER_OUTPUT_TOKEN.labels(*labels)
    for gap in gaps:
        inter_token.observe(gap)
        per_output_token.observe(gap)


def observe_finished(
    model: str, e2e_seconds: float, usage: TokenUsage | None, timings: EngineTimings, finish_reason: str | None
) -> None:
    """A request llama-server finished (its answer carries `timings`): vLLM's per-request histograms and counters.

    Answers without `timings` are not llama-server's (a vLLM replica in cluster mode exports these metrics
    itself), so callers record nothing for them. What is recorded: kubeinfer.metrics.observations.
    """
    apply(vllm_contributions(model, e2e_seconds, usage, timings, finish_reason))
