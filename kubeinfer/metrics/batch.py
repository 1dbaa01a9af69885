"""Batch worker metrics: request outcomes, retries, tokens, and the progress of the batch running now.

A gateway runs one batch at a time, so progress gauges need no batch label; the batch id would be an
unbounded label and stays in the logs and the Batch object instead.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from kubeinfer.metrics.usage import TokenUsage

#: Outcomes of one batch request, named like the OpenAI Batch object's `request_counts`, plus `expired`.
REQUEST_STATUSES = ("completed", "failed", "expired")
#: Final statuses of a batch.
BATCH_STATUSES = ("completed", "failed", "cancelled", "expired")
TOKEN_KINDS = ("prompt", "completion")

REQUESTS = Counter(
    "kubeinfer_batch_requests_total",
    "Batch requests finished, by status: completed (answered 200), failed (error answer or retries used up), "
    "expired (the batch's window closed first)",
    ["status"],
)
RETRIES = Counter("kubeinfer_batch_request_retries_total", "Batch requests sent again after a transient engine error")
REQUEST_DURATION = Histogram(
    "kubeinfer_batch_request_duration_seconds",
    "Time one batch request spent at the engine, retries and their back-off included",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
REQUESTS_IN_FLIGHT = Gauge("kubeinfer_batch_requests_in_flight", "Batch requests at the engine now")
TOKENS = Counter("kubeinfer_batch_tokens_total", "Tokens of completed batch requests by kind", ["kind"])
CACHED_PROMPT_TOKENS = Counter(
    "kubeinfer_batch_cached_prompt_tokens_total",
    "Prompt tokens of batch requests that the engine reused from its prompt cache (prefix grouping at work)",
)
BATCHES = Counter("kubeinfer_batches_finished_total", "Batches that reached a final status", ["status"])
PROGRESS = Gauge(
    "kubeinfer_batch_progress_ratio", "Share of the running batch's requests that are finished; 0 when none runs"
)
RUNNING = Gauge("kubeinfer_batch_running", "1 while a batch is validating, running or finalizing, else 0")

for _status in REQUEST_STATUSES:  # zero series up front, so error ratios answer before the first failure
    REQUESTS.labels(_status)
for _status in BATCH_STATUSES:
    BATCHES.labels(_status)
for _kind in TOKEN_KINDS:
    TOKENS.labels(_kind)


def record_tokens(usage: TokenUsage | None) -> None:
    if usage is None:
        return
    TOKENS.labels("prompt").inc(usage.prompt)
    TOKENS.labels("completion").inc(usage.completion)
    CACHED_PROMPT_TOKENS.inc(usage.cached_prompt)


def record_progress(done: int, total: int) -> None:
    PROGRESS.set(done / total if total else 0.0)
