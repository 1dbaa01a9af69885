"""Batch worker metrics: request outcomes, retries, tokens, and the progress of the batch running now.

A gateway runs one batch at a time, so progress gauges need no batch label; the batch id would be an
unbounded label and stays in the logs and the Batch object instead.
"""

from __future__ import annotations

from kubeinfer.metrics import families as f
from kubeinfer.metrics.families import BATCH_STATUSES as BATCH_STATUSES
from kubeinfer.metrics.families import REQUEST_STATUSES as REQUEST_STATUSES
from kubeinfer.metrics.families import TOKEN_KINDS as TOKEN_KINDS
from kubeinfer.metrics.observations import RequestObservation, contributions
from kubeinfer.metrics.registered import apply, counter, gauge, histogram

REQUESTS = counter(f.BATCH_REQUESTS)
RETRIES = counter(f.BATCH_RETRIES)
REQUEST_DURATION = histogram(f.BATCH_REQUEST_DURATION)
REQUESTS_IN_FLIGHT = gauge(f.BATCH_REQUESTS_IN_FLIGHT)
TOKENS = counter(f.BATCH_TOKENS)
CACHED_PROMPT_TOKENS = counter(f.BATCH_CACHED_PROMPT_TOKENS)
BATCHES = counter(f.BATCHES_FINISHED)
PROGRESS = gauge(f.BATCH_PROGRESS)
RUNNING = gauge(f.BATCH_RUNNING)

for _status in REQUEST_STATUSES:  # zero series up front, so error ratios answer before the first failure
    REQUESTS.labels(_status)
for _status in BATCH_STATUSES:
    BATCHES.labels(_status)
for _kind in TOKEN_KINDS:
    TOKENS.labels(_kind)


def record(observation: RequestObservation) -> None:
    """A finished batch request into this process's registry: what a cluster shard adds to its state, too.

    Retries are the exception: the worker counts them here as they happen (RETRIES), so a hung engine shows
    at once; a shard's state counts them when the request finishes, the only moment a log can hold them.
    """
    apply(c for c in contributions(observation) if c.family is not f.BATCH_RETRIES)


def record_progress(done: int, total: int) -> None:
    PROGRESS.set(done / total if total else 0.0)
