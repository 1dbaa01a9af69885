"""The batch and vLLM metric families as plain data: name, help, type, labels and buckets, and no registry.

Two kinds of process export these families. A process that runs batch requests itself (the gateway with its
embedded worker) registers them as prometheus-client objects (kubeinfer.metrics.batch and .vllm, built from
these specs); the operator exports the same families for the BatchJobs of a cluster from its workers' shard
states (kubeinfer.metrics.batch_jobs). Both read the specs here, so names, help texts and bucket layouts cannot
drift apart, and the operator can import them without registering anything it does not serve itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Family:
    """One metric family. A counter's `name` is as declared (prometheus-client adds `_total` on export)."""

    name: str
    documentation: str
    kind: Kind
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


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


# --- vLLM's serving metrics (vllm/v1/metrics/loggers.py) -------------------------------------------------------

#: The `engine` label of every vLLM-named series kubeinfer records.
LLAMACPP = "llamacpp"
VLLM_LABELS = ("model_name", "engine")
#: vLLM's FinishReason values that a relayed answer can carry (vLLM counts tool calls as `stop`).
FINISH_REASONS = ("stop", "length")
#: vLLM sizes token buckets by the model's context; kubeinfer serves several models from one registry, so
#: the buckets reach the largest context any of them may have.
MAX_MODEL_LEN = 131072
TTFT_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
TTFT_BUCKETS += (5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TOKEN_LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
TOKEN_LATENCY_BUCKETS += (2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
REQUEST_LATENCY_BUCKETS += (50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
TOKEN_BUCKETS = tuple(float(b) for b in build_1_2_5_buckets(MAX_MODEL_LEN))


def _vllm_histogram(name: str, documentation: str, buckets: tuple[float, ...]) -> Family:
    return Family(f"vllm:{name}", documentation, "histogram", VLLM_LABELS, buckets)


def _vllm_counter(name: str, documentation: str, *extra: str) -> Family:
    return Family(f"vllm:{name}", documentation, "counter", (*VLLM_LABELS, *extra))


E2E_REQUEST_LATENCY = _vllm_histogram(
    "e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS
)
REQUEST_QUEUE_TIME = _vllm_histogram(
    "request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS
)
REQUEST_INFERENCE_TIME = _vllm_histogram(
    "request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS
)
REQUEST_PREFILL_TIME = _vllm_histogram(
    "request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS
)
REQUEST_DECODE_TIME = _vllm_histogram(
    "request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS
)
REQUEST_TIME_PER_OUTPUT_TOKEN = _vllm_histogram(
    "request_time_per_output_token_seconds",
    "Histogram of time_per_output_token_seconds per request.",
    TOKEN_LATENCY_BUCKETS,
)
REQUEST_PROMPT_TOKENS = _vllm_histogram("request_prompt_tokens", "Number of prefill tokens processed.", TOKEN_BUCKETS)
REQUEST_GENERATION_TOKENS = _vllm_histogram(
    "request_generation_tokens", "Number of generation tokens processed.", TOKEN_BUCKETS
)
PROMPT_TOKENS = _vllm_counter("prompt_tokens", "Number of prefill tokens processed.")
GENERATION_TOKENS = _vllm_counter("generation_tokens", "Number of generation tokens processed.")
REQUEST_SUCCESS = _vllm_counter("request_success", "Count of successfully processed requests.", "finished_reason")
PREFIX_CACHE_QUERIES = _vllm_counter(
    "prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
)
PREFIX_CACHE_HITS = _vllm_counter("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.")
REQUESTS_RUNNING = Family(
    "vllm:num_requests_running", "Number of requests in model execution batches.", "gauge", VLLM_LABELS
)

# --- kubeinfer's batch metrics ------------------------------------------------------------------------------------

BATCH_REQUESTS = Family(
    "kubeinfer_batch_requests_total",
    "Batch requests finished, by status: completed (answered 200), failed (error answer or retries used up), "
    "expired (the batch's window closed first)",
    "counter",
    ("status",),
)
BATCH_RETRIES = Family(
    "kubeinfer_batch_request_retries_total", "Batch requests sent again after a transient engine error", "counter"
)
BATCH_REQUEST_DURATION = Family(
    "kubeinfer_batch_request_duration_seconds",
    "Time one batch request spent at the engine, retries and their back-off included",
    "histogram",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
BATCH_REQUESTS_IN_FLIGHT = Family("kubeinfer_batch_requests_in_flight", "Batch requests at the engine now", "gauge")
BATCH_TOKENS = Family(
    "kubeinfer_batch_tokens_total", "Tokens of completed batch requests by kind", "counter", ("kind",)
)
BATCH_CACHED_PROMPT_TOKENS = Family(
    "kubeinfer_batch_cached_prompt_tokens_total",
    "Prompt tokens of batch requests that the engine reused from its prompt cache (prefix grouping at work)",
    "counter",
)
BATCHES_FINISHED = Family(
    "kubeinfer_batches_finished_total", "Batches that reached a final status", "counter", ("status",)
)
BATCH_PROGRESS = Family(
    "kubeinfer_batch_progress_ratio",
    "Share of the running batch's requests that are finished; 0 when none runs",
    "gauge",
)
BATCH_RUNNING = Family(
    "kubeinfer_batch_running", "1 while a batch is validating, running or finalizing, else 0", "gauge"
)

#: Outcomes of one batch request, named like the OpenAI Batch object's `request_counts`, plus `expired`.
REQUEST_STATUSES = ("completed", "failed", "expired")
#: Final statuses of a batch.
BATCH_STATUSES = ("completed", "failed", "cancelled", "expired")
TOKEN_KINDS = ("prompt", "completion")

#: The cumulative families a batch shard accumulates (kubeinfer.metrics.shard_state), by name.
SHARD_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        BATCH_REQUESTS,
        BATCH_RETRIES,
        BATCH_REQUEST_DURATION,
        BATCH_TOKENS,
        BATCH_CACHED_PROMPT_TOKENS,
        E2E_REQUEST_LATENCY,
        REQUEST_QUEUE_TIME,
        REQUEST_INFERENCE_TIME,
        REQUEST_PREFILL_TIME,
        REQUEST_DECODE_TIME,
        REQUEST_TIME_PER_OUTPUT_TOKEN,
        REQUEST_PROMPT_TOKENS,
        REQUEST_GENERATION_TOKENS,
        PROMPT_TOKENS,
        GENERATION_TOKENS,
        REQUEST_SUCCESS,
        PREFIX_CACHE_QUERIES,
        PREFIX_CACHE_HITS,
    )
}
