"""Token stats and history entries (seed 000): throughput over inference time, nulls for failed jobs."""

from __future__ import annotations

from kubeinfer.batch.stats import job_entry, job_stats
from kubeinfer.storage.records import BatchRecord


def rec(status: str, completed: int = 0, prompt: int = 0, completion: int = 0, seconds: float = 0.0) -> BatchRecord:
    return BatchRecord(
        id=f"batch-{status}",
        project="p",
        endpoint="/v1/chat/completions",
        input_file_id="f",
        completion_window="24h",
        status=status,
        total=completed,
        completed=completed,
        prompt_tokens=prompt,
        completion_tokens=completion,
        inference_seconds=seconds,
    )


def test_history_entry_divides_by_inference_time() -> None:
    entry = job_entry(rec("completed", completed=10, prompt=300, completion=142, seconds=4.5))
    assert entry["total_tokens"] == 442
    assert entry["token_throughput"] == 98.22
    assert entry["request_throughput"] == 2.222


def test_failed_job_has_null_token_fields() -> None:
    entry = job_entry(rec("failed"))
    assert all(
        entry[k] is None
        for k in ("prompt_tokens", "total_tokens", "token_throughput", "request_throughput", "inference_seconds")
    )


def test_stats_aggregate_and_success_rate() -> None:
    stats = job_stats(
        [
            rec("completed", 2, 100, 20, 2.0),
            rec("completed", 1, 40, 8, 0.4),
            rec("failed"),
            rec("in_progress", 1, 10, 2, 1.0),
        ]
    )
    assert stats["total_jobs"] == 4
    assert stats["total_tokens"] == 180
    assert stats["prompt_tokens"] == 150
    assert stats["avg_token_throughput"] == round(180 / 3.4, 2)
    assert stats["success_rate"] == round(2 / 3, 4)


def test_stats_of_nothing_are_nulls_not_errors() -> None:
    stats = job_stats([])
    assert stats["total_jobs"] == 0
    assert stats["avg_token_throughput"] is None
    assert stats["success_rate"] is None
