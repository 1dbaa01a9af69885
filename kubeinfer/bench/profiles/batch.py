"""Batch documents: summaries, their throughput, steadiness, slowdown and the server's memory drift.

Without a sweep the documents go one after another (the profile's classic measurement); with one, at the
sweep's levels. Time per document is each request's end-to-end time at the headline level, in send order.
"""

from __future__ import annotations

import threading
from typing import Any

from kubeinfer.bench.client import coefficient_of_variation
from kubeinfer.bench.intervals import batch_intervals, beyond, describe, interval_of
from kubeinfer.bench.load.driver import RequestRecord
from kubeinfer.bench.load.prompts import Framing
from kubeinfer.bench.profiles.base import ProfileContext, guarded, judged, mean, percent_change, rounded
from kubeinfer.bench.profiles.load import ProfileLoad, run_load
from kubeinfer.resources.benchmark_matrix import BatchProfile, ProfileResult

#: Every document has the same length and every summary the same number of tokens (unless a traffic
#: scenario says otherwise), so a change in time per document measures the server, not the input.
DOCUMENT_TOKENS = 320
QUICK_DOCUMENTS = 10
WINDOW = 10
SUMMARY = Framing(
    instruction="Summarize this document in three sentences.\n\n{text}",
    topic="the harbour",
    temperature=0.0,
)


class MemoryTrail:
    """Server memory read after every request (from any load thread)."""

    def __init__(self, ctx: ProfileContext) -> None:
        self.ctx = ctx
        self.rss: list[int] = []
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, _record: RequestRecord) -> None:
        if (memory := self.ctx.read_memory()) is None:
            return
        current, hwm, _swap = memory
        with self._lock:
            self.rss.append(current)
            self.peak = max(self.peak, hwm, current)


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Summarize `documents` documents (or send the sweep's levels), timing each and sampling server memory."""
    cfg = ctx.profiles.batch
    count = min(cfg.documents, QUICK_DOCUMENTS) if ctx.quick else cfg.documents
    max_tokens = max(8, min(cfg.max_tokens, ctx.max_context // 4))
    doc_tokens = min(DOCUMENT_TOKENS, ctx.max_context - max_tokens - 96)
    memory = MemoryTrail(ctx)
    outcome = run_load(ctx, ProfileLoad("batch", cfg, SUMMARY, doc_tokens, max_tokens, count), memory)
    seconds = [r.e2e_seconds for r in outcome.headline.run.records if r.ok and r.e2e_seconds is not None]
    metrics = outcome.metrics() | summary(seconds, memory.rss, memory.peak)
    if outcome.swept:
        metrics.pop("throughput_docs_per_hour_interval", None)
        metrics |= swept_throughput(metrics)
    return judged(metrics, failures(metrics, cfg))


def swept_throughput(metrics: dict[str, Any]) -> dict[str, Any]:
    """With a sweep, documents per hour are the headline level's answered requests per hour, and so is the
    interval (not the reciprocal of seconds per document: requests overlap)."""
    rps = metrics.get("achieved_rps")
    if not rps:
        return {}
    found: dict[str, Any] = {"throughput_docs_per_hour": rounded(rps * 3600, 2)}
    if (interval := interval_of(metrics, "achieved_rps")) is not None:
        found["throughput_docs_per_hour_interval"] = [round(end * 3600, 2) for end in interval]
    return found


def summary(seconds: list[float], rss: list[int], peak: int) -> dict[str, Any]:
    per_doc = mean(seconds)
    window = min(WINDOW, len(seconds) // 2)
    degradation = percent_change(mean(seconds[:window]), mean(seconds[-window:])) if window else None
    drift = percent_change(float(rss[0]), float(rss[-1])) if len(rss) >= 2 else None
    return {
        "documents": len(seconds),
        "seconds_per_document": rounded(per_doc),
        "throughput_docs_per_hour": rounded(3600 / per_doc, 2) if per_doc else None,
        "variance_percent": rounded(coefficient_of_variation(seconds), 2),
        "degradation_percent": rounded(degradation, 2),
        "memory_drift_percent": rounded(drift, 3),
        "peak_rss_bytes": peak if rss else None,
        **batch_intervals(seconds, window),
    }


def failures(metrics: dict[str, Any], cfg: BatchProfile) -> list[str]:
    found = []
    if not metrics["documents"]:
        found.append("no document was processed")
    checks = (
        ("variance_percent", cfg.max_variance_percent, "time per document varies"),
        ("degradation_percent", cfg.max_degradation_percent, "the last documents were slower"),
        ("memory_drift_percent", cfg.max_memory_drift_percent, "server memory grew"),
    )
    for key, limit, what in checks:
        value = metrics[key]
        if beyond(metrics, key, limit, higher_is_better=False):
            found.append(f"{what}: {key.removesuffix('_percent')} {value:.1f}%{describe(metrics, key)} > {limit:g}%")
    return found
