"""vLLM's serving metrics for the llama.cpp requests kubeinfer relays: vLLM's names, labels, units and buckets.

llama-server exports counters and gauges but no latency histograms, so the gateway's proxy and the batch
workers measure each request where they see it and record it exactly as vLLM's PrometheusStatLogger
(vllm/v1/metrics/loggers.py) does: a vLLM dashboard's PromQL then works unchanged on llama.cpp models.
`model_name` is the served model, `engine` names the engine kind (vLLM's own series carry the engine index
there, `0`), so both engines stand side by side and `engine` tells them apart. docs/metrics.md maps each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from kubeinfer.metrics.usage import TokenUsage

#: The `engine` label of every series recorded here.
LLAMACPP = "llamacpp"
LABELS = ["model_name", "engine"]
#: vLLM's FinishReason values that a relayed answer can carry (vLLM counts tool calls as `stop`).
FINISH_REASONS = ("stop", "length")


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to `max_value`."""
    buckets: list[int] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
        exponent += 1


#: vLLM sizes token buckets by the model's context; kubeinfer serves several models from one registry, so
#: the buckets reach the largest context any of them may have.
MAX_MODEL_LEN = 131072
_TTFT_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
_TTFT_BUCKETS += (5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
_TOKEN_LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
_TOKEN_LATENCY_BUCKETS += (2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
_REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
_REQUEST_LATENCY_BUCKETS += (50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
_TOKEN_BUCKETS = build_1_2_5_buckets(MAX_MODEL_LEN)

TIME_TO_FIRST_TOKEN = Histogram(
    "vllm:time_to_first_token_seconds",
    "Histogram of time to first token in seconds.",
    LABELS,
    buckets=_TTFT_BUCKETS,
)
INTER_TOKEN_LATENCY = Histogram(
    "vllm:inter_token_latency_seconds",
    "Histogram of inter-token latency in seconds.",
    LABELS,
    buckets=_TOKEN_LATENCY_BUCKETS,
)
# vLLM 0.11 renamed it to inter_token_latency_seconds; older dashboards still query the old name.
TIME_PER_OUTPUT_TOKEN = Histogram(
    "vllm:time_per_output_token_seconds",
    "Histogram of time per output token in seconds. DEPRECATED: Use vllm:inter_token_latency_seconds instead.",
    LABELS,
    buckets=_TOKEN_LATENCY_BUCKETS,
)
REQUEST_TIME_PER_OUTPUT_TOKEN = Histogram(
    "vllm:request_time_per_output_token_seconds",
    "Histogram of time_per_output_token_seconds per request.",
    LABELS,
    buckets=_TOKEN_LATENCY_BUCKETS,
)
E2E_REQUEST_LATENCY = Histogram(
    "vllm:e2e_request_latency_seconds",
    "Histogram of e2e request latency in seconds.",
    LABELS,
    buckets=_REQUEST_LATENCY_BUCKETS,
)
REQUEST_QUEUE_TIME = Histogram(
    "vllm:request_queue_time_seconds",
    "Histogram of time spent in WAITING phase for request.",
    LABELS,
    buckets=_REQUEST_LATENCY_BUCKETS,
)
REQUEST_INFERENCE_TIME = Histogram(
    "vllm:request_inference_time_seconds",
    "Histogram of time spent in RUNNING phase for request.",
    LABELS,
    buckets=_REQUEST_LATENCY_BUCKETS,
)
REQUEST_PREFILL_TIME = Histogram(
    "vllm:request_prefill_time_seconds",
    "Histogram of time spent in PREFILL phase for request.",
    LABELS,
    buckets=_REQUEST_LATENCY_BUCKETS,
)
REQUEST_DECODE_TIME = Histogram(
    "vllm:request_decode_time_seconds",
    "Histogram of time spent in DECODE phase for request.",
    LABELS,
    buckets=_REQUEST_LATENCY_BUCKETS,
)
REQUEST_PROMPT_TOKENS = Histogram(
    "vllm:request_prompt_tokens", "Number of prefill tokens processed.", LABELS, buckets=_TOKEN_BUCKETS
)
REQUEST_GENERATION_TOKENS = Histogram(
    "vllm:request_generation_tokens", "Number of generation tokens processed.", LABELS, buckets=_TOKEN_BUCKETS
)
PROMPT_TOKENS = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", LABELS)
GENERATION_TOKENS = Counter("vllm:generation_tokens", "Number of generation tokens processed.", LABELS)
REQUEST_SUCCESS = Counter(
    "vllm:request_success", "Count of successfully processed requests.", [*LABELS, "finished_reason"]
)
PREFIX_CACHE_QUERIES = Counter(
    "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", LABELS
)
PREFIX_CACHE_HITS = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", LABELS)
REQUESTS_RUNNING = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", LABELS)


@dataclass(frozen=True)
class EngineTimings:
    """llama-server's own split of a request (its `timings`): prompt processing and generation, in seconds."""

    prefill: float
    decode: float
    generated: int

    @property
    def inference(self) -> float:
        return self.prefill + self.decode


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

    Queue time is what llama-server did not spend computing (waiting for a free slot, and the transport);
    prefill and decode are its own `timings`. Answers without `timings` are not llama-server's (a vLLM replica
    in cluster mode exports these metrics itself), so callers record nothing for them.
    """
    labels = (model, LLAMACPP)
    E2E_REQUEST_LATENCY.labels(*labels).observe(e2e_seconds)
    if finish_reason is not None:
        REQUEST_SUCCESS.labels(*labels, finish_reason).inc()
    if usage is not None:
        REQUEST_PROMPT_TOKENS.labels(*labels).observe(usage.prompt)
        REQUEST_GENERATION_TOKENS.labels(*labels).observe(usage.completion)
        PROMPT_TOKENS.labels(*labels).inc(usage.prompt)
        GENERATION_TOKENS.labels(*labels).inc(usage.completion)
        PREFIX_CACHE_QUERIES.labels(*labels).inc(usage.prompt)
        PREFIX_CACHE_HITS.labels(*labels).inc(usage.cached_prompt)
    REQUEST_QUEUE_TIME.labels(*labels).observe(max(0.0, e2e_seconds - timings.inference))
    REQUEST_PREFILL_TIME.labels(*labels).observe(timings.prefill)
    REQUEST_DECODE_TIME.labels(*labels).observe(timings.decode)
    REQUEST_INFERENCE_TIME.labels(*labels).observe(timings.inference)
    if timings.generated > 1:
        REQUEST_TIME_PER_OUTPUT_TOKEN.labels(*labels).observe(timings.decode / (timings.generated - 1))
