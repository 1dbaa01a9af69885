"""What the batch pages show of a batch, formatted once for the page and for its live progress updates."""

from __future__ import annotations

from typing import Any

from kubeinfer.batch.stats import job_entry
from kubeinfer.gateway.ui.render import format_number
from kubeinfer.storage.records import BatchRecord


def progress(rec: BatchRecord) -> dict[str, Any]:
    """The JSON the batch page polls: raw counts for the progress bar, display strings by field name."""
    entry = job_entry(rec)
    done = rec.completed + rec.failed
    percent = f"{100 * done / rec.total:.0f} %" if rec.total else "–"
    throughput = entry["token_throughput"]
    requests_per_second = entry["request_throughput"]
    return {
        "terminal": rec.terminal,
        "done": done,
        "total": rec.total,
        "fields": {
            "status": rec.status,
            "total": format_number(rec.total),
            "completed": format_number(rec.completed),
            "failed": format_number(rec.failed),
            "percent": percent,
            "prompt_tokens": format_number(rec.prompt_tokens),
            "completion_tokens": format_number(rec.completion_tokens),
            "total_tokens": format_number(rec.prompt_tokens + rec.completion_tokens),
            "inference_seconds": format_number(round(rec.inference_seconds, 2)),
            "token_throughput": f"{format_number(throughput)} tokens/s" if throughput is not None else "–",
            "request_throughput": (
                f"{format_number(requests_per_second, 3)} requests/s" if requests_per_second is not None else "–"
            ),
        },
    }
