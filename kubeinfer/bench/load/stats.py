"""Distributions of a level's requests: percentiles of TTFT, inter-token latency, end-to-end latency and
queue wait, throughput over the level's span, and the token shape actually sent."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from kubeinfer.bench.intervals import clustered_quantile_intervals, mean_intervals, quantile_interval
from kubeinfer.bench.load.driver import RequestRecord

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct` percentile with linear interpolation between closest ranks (numpy's default); None if empty."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    if rank == low:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def distribution(name: str, values: Sequence[float]) -> dict[str, Any]:
    """`{name}_p50_seconds` ... `{name}_p99_seconds`, each with its 95% interval (`..._seconds_interval`, an end
    null where too few values bound it)."""
    found: dict[str, Any] = {}
    for p in PERCENTILES:
        found[f"{name}_p{p}_seconds"] = _rounded(percentile(values, p), 5)
        if (interval := quantile_interval(values, p)) is not None:
            found[f"{name}_p{p}_seconds_interval"] = interval
    return found


def pooled_distribution(name: str, groups: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Percentiles over every value of every group (a request's inter-token gaps); their intervals allow for
    a request's values moving together (intervals.clustered_quantile_intervals)."""
    pooled = [value for group in groups for value in group]
    intervals = clustered_quantile_intervals(groups, PERCENTILES)
    found: dict[str, Any] = {}
    for p in PERCENTILES:
        found[f"{name}_p{p}_seconds"] = _rounded(percentile(pooled, p), 5)
        if p in intervals:
            found[f"{name}_p{p}_seconds_interval"] = intervals[p]
    return found


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def span_seconds(records: Sequence[RequestRecord]) -> float:
    """From the first request sent to the last one finished."""
    if not records:
        return 0.0
    return max(r.finished_seconds for r in records) - min(r.sent_seconds for r in records)


def token_shape(values: Sequence[int]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": round(statistics.fmean(values), 1), "min": min(values), "max": max(values)}


def traffic_sent(records: Sequence[RequestRecord]) -> dict[str, Any]:
    """The shape actually sent: the server's token counts of every answered request."""
    ok = [r for r in records if r.ok]
    return {
        "requests": len(records),
        "input_tokens": token_shape([r.input_tokens for r in ok if r.input_tokens is not None]),
        "output_tokens": token_shape([r.output_tokens for r in ok if r.output_tokens is not None]),
        "cached_input_tokens": token_shape([r.cached_tokens for r in ok if r.cached_tokens is not None]),
        "prefixed_requests": sum(1 for r in records if r.prefixed),
        "turns": max((r.turn + 1 for r in records), default=0),
    }


def summarize(records: Sequence[RequestRecord]) -> dict[str, Any]:
    """One level's figures. Throughput counts answered requests over the level's span; ITL percentiles pool
    every gap between streamed tokens of every request (each token counts once)."""
    ok = [r for r in records if r.ok]
    span = span_seconds(records)
    output = sum(r.output_tokens or 0 for r in ok)
    prompt = sum(r.input_tokens or 0 for r in ok)
    summary: dict[str, Any] = {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "duration_seconds": _rounded(span, 3),
        "achieved_rps": _rounded(len(ok) / span if span > 0 else None),
        "output_tokens_per_second": _rounded(output / span if span > 0 else None, 3),
        "input_tokens_per_second": _rounded(prompt / span if span > 0 else None, 3),
        "ttft_seconds": _rounded(_mean([r.ttft_seconds for r in ok if r.ttft_seconds is not None])),
        "tokens_per_second": _rounded(_mean([t for r in ok if (t := r.tokens_per_second) is not None]), 3),
        "variance_percent": _rounded(_mean([v for r in ok if (v := r.variance_percent) is not None]), 2),
        "server_ttft_seconds": _rounded(_mean([s for r in ok if (s := r.server_prompt_seconds) is not None])),
        "server_tokens_per_second": _rounded(
            _mean([s for r in ok if (s := r.server_tokens_per_second) is not None]), 3
        ),
    }
    summary |= distribution("ttft", [r.ttft_seconds for r in ok if r.ttft_seconds is not None])
    summary |= pooled_distribution("itl", [r.itl_seconds for r in ok])
    summary |= distribution("e2e", [r.e2e_seconds for r in ok if r.e2e_seconds is not None])
    summary |= distribution("queue_wait", [q for r in ok if (q := r.queue_wait_seconds) is not None])
    summary |= mean_intervals(
        {
            "ttft_seconds": [r.ttft_seconds for r in ok if r.ttft_seconds is not None],
            "tokens_per_second": [t for r in ok if (t := r.tokens_per_second) is not None],
            "variance_percent": [v for r in ok if (v := r.variance_percent) is not None],
            "server_ttft_seconds": [s for r in ok if (s := r.server_prompt_seconds) is not None],
            "server_tokens_per_second": [s for r in ok if (s := r.server_tokens_per_second) is not None],
        }
    )
    return summary
