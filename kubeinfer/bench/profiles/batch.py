"""Batch documents: sequential summaries, their throughput, steadiness, slowdown and the server's memory drift."""

from __future__ import annotations

from typing import Any

from kubeinfer.bench.client import ChatClient, Interrupted, coefficient_of_variation
from kubeinfer.bench.profiles.base import (
    ProfileContext,
    filler_text,
    fit_prompt,
    guarded,
    interrupted,
    judged,
    mean,
    percent_change,
    rounded,
)
from kubeinfer.resources.benchmark_matrix import BatchProfile, ProfileResult

#: Every document has the same length and every summary the same number of tokens, so a change in time
#: per document measures the server, not the input.
DOCUMENT_TOKENS = 320
QUICK_DOCUMENTS = 10
WINDOW = 10
TOPICS = ("the harbour", "the mill", "the observatory", "the library", "the vineyard", "the foundry")


@guarded
def run(ctx: ProfileContext) -> ProfileResult:
    """Summarize `documents` documents one after another, timing each and sampling server memory."""
    cfg = ctx.profiles.batch
    count = min(cfg.documents, QUICK_DOCUMENTS) if ctx.quick else cfg.documents
    max_tokens = max(8, min(cfg.max_tokens, ctx.max_context // 4))
    doc_tokens = min(DOCUMENT_TOKENS, ctx.max_context - max_tokens - 96)
    seconds: list[float] = []
    rss: list[int] = []
    peak = 0
    with ctx.client() as client:
        for index in range(count):
            try:
                seconds.append(summarize_document(client, index, doc_tokens, max_tokens))
            except Interrupted:
                return interrupted(summary(seconds, rss, peak))
            if (memory := ctx.read_memory()) is not None:
                current, hwm, _swap = memory
                rss.append(current)
                peak = max(peak, hwm, current)
            if index % 5 == 4:
                ctx.log(f"batch {index + 1}/{count} documents")
    metrics = summary(seconds, rss, peak)
    return judged(metrics, failures(metrics, cfg))


def document(index: int, tokens: int) -> str:
    return filler_text(tokens, topic=TOPICS[index % len(TOPICS)]) + f" (document {index + 1})"


def summarize_document(client: ChatClient, index: int, doc_tokens: int, max_tokens: int) -> float:
    text = fit_prompt(client, document(index, doc_tokens), doc_tokens)
    messages = [{"role": "user", "content": f"Summarize this document in three sentences.\n\n{text}"}]
    result = client.stream_chat(messages, max_tokens, temperature=0.0, cache_prompt=False, ignore_eos=True)
    return result.total_seconds


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
        if value is not None and value > limit:
            found.append(f"{what}: {key.removesuffix('_percent')} {value:.1f}% > {limit:g}%")
    return found
