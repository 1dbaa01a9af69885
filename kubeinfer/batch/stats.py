"""Token totals and throughput of a project's batches (seed 000's /v1/jobs/stats and /v1/jobs/history).

Throughput divides by inference time (wall time with a request at the engine), not by the batch's
lifetime, so queueing, validation and file I/O do not dilute the engine's figure. Jobs without token
data (failed validation, cancelled before any answer) report nulls rather than zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubeinfer.storage.records import TERMINAL_STATUSES, BatchRecord

#: Most jobs one history page returns; larger limits are clamped, not refused.
MAX_HISTORY = 10_000


def _ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    return round(numerator / denominator, digits) if denominator > 0 else None


def job_entry(rec: BatchRecord) -> dict[str, Any]:
    has_tokens = rec.completed > 0 and rec.status != "failed"
    total_tokens = rec.prompt_tokens + rec.completion_tokens
    return {
        "batch_id": rec.id,
        "status": rec.status,
        "model": rec.model,
        "created_at": rec.created_at,
        "completed_at": rec.completed_at,
        "total_requests": rec.total,
        "completed_requests": rec.completed,
        "failed_requests": rec.failed,
        "prompt_tokens": rec.prompt_tokens if has_tokens else None,
        "completion_tokens": rec.completion_tokens if has_tokens else None,
        "total_tokens": total_tokens if has_tokens else None,
        "inference_seconds": round(rec.inference_seconds, 3) if has_tokens else None,
        "token_throughput": _ratio(total_tokens, rec.inference_seconds, 2) if has_tokens else None,
        "request_throughput": _ratio(rec.completed, rec.inference_seconds, 3) if has_tokens else None,
    }


def job_stats(records: Iterable[BatchRecord]) -> dict[str, Any]:
    total_jobs = finished = succeeded = 0
    prompt = completion = 0
    seconds = 0.0
    for rec in records:
        total_jobs += 1
        if rec.status in TERMINAL_STATUSES:
            finished += 1
            succeeded += rec.status == "completed"
        if rec.status != "failed":
            prompt += rec.prompt_tokens
            completion += rec.completion_tokens
            seconds += rec.inference_seconds
    return {
        "total_jobs": total_jobs,
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "avg_token_throughput": _ratio(prompt + completion, seconds, 2),
        "success_rate": _ratio(succeeded, finished, 4),
    }
