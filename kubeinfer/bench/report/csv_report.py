"""The CSV report: one row per cell, profile metrics flattened into `<profile>_<metric>` columns."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from typing import Any

from kubeinfer.bench.intervals import interval_of
from kubeinfer.bench.report.json_report import ReportData
from kubeinfer.resources.benchmark_matrix import CellResult

Getter = Callable[[CellResult], Any]


def metric(profile: str, name: str) -> Getter:
    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        return result.metrics.get(name) if result else None

    return get


def interval_end(profile: str, name: str, end: int) -> Getter:
    """The low (0) or high (1) end of a metric's 95% interval (`<name>_interval`), when the profile has one."""

    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        found = interval_of(result.metrics, name) if result else None
        return found[end] if found and math.isfinite(found[end]) else None

    return get


def rating(profile: str) -> Getter:
    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        return result.rating if result else None

    return get


def profile_status(profile: str) -> Getter:
    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        return result.status if result else None

    return get


#: Column name -> value; the first columns follow the seed's example header.
COLUMNS: dict[str, Getter] = {
    "model": lambda c: c.model,
    "quant": lambda c: c.quantization,
    "size_gb": lambda c: c.model_size_gb,
    "memory_gb": lambda c: c.peak_memory_gb,
    "params_b": lambda c: c.model_size_b,
    "estimated_memory_gb": lambda c: c.estimated_memory_gb,
    "load_seconds": lambda c: c.load_seconds,
    "cold_load_seconds": lambda c: c.cold_load_seconds,
    "max_sustainable_rps": lambda c: c.max_sustainable_rps,
    "max_sustainable_output_tps": lambda c: c.max_sustainable_output_tokens_per_second,
    "max_sustainable_input_tps": lambda c: c.max_sustainable_input_tokens_per_second,
    "price_per_hour": lambda c: c.price_per_hour,
    "currency": lambda c: c.currency,
    "cost_per_million_output_tokens": lambda c: c.cost_per_million_output_tokens,
    "cost_per_million_input_tokens": lambda c: c.cost_per_million_input_tokens,
    "threads": lambda c: c.threads,
    "status": lambda c: c.status.value,
    "rule": lambda c: c.rule.value if c.rule else None,
    "reason": lambda c: c.reason,
    "interactive_status": profile_status("interactive"),
    "interactive_ttft": metric("interactive", "ttft_seconds"),
    "interactive_tps": metric("interactive", "tokens_per_second"),
    "interactive_variance": metric("interactive", "variance_percent"),
    "interactive_ttft_low": interval_end("interactive", "ttft_seconds", 0),
    "interactive_ttft_high": interval_end("interactive", "ttft_seconds", 1),
    "interactive_tps_low": interval_end("interactive", "tokens_per_second", 0),
    "interactive_tps_high": interval_end("interactive", "tokens_per_second", 1),
    "interactive_variance_low": interval_end("interactive", "variance_percent", 0),
    "interactive_variance_high": interval_end("interactive", "variance_percent", 1),
    "interactive_rating": rating("interactive"),
    "long_context_status": profile_status("long_context"),
    "long_context_load": metric("long_context", "initial_load_seconds"),
    "long_context_max": metric("long_context", "max_context_ok"),
    "long_context_rating": rating("long_context"),
    "batch_status": profile_status("batch"),
    "batch_throughput": metric("batch", "throughput_docs_per_hour"),
    "batch_seconds_per_doc": metric("batch", "seconds_per_document"),
    "batch_variance": metric("batch", "variance_percent"),
    "batch_variance_low": interval_end("batch", "variance_percent", 0),
    "batch_variance_high": interval_end("batch", "variance_percent", 1),
    "batch_degradation": metric("batch", "degradation_percent"),
    "batch_memory_drift": metric("batch", "memory_drift_percent"),
    "batch_rating": rating("batch"),
    "quality_status": profile_status("quality"),
    "quality_score": metric("quality", "overall_score"),
    "quality_math": metric("quality", "math_score"),
    "quality_comprehension": metric("quality", "comprehension_score"),
    "quality_reasoning": metric("quality", "reasoning_score"),
    "quality_format": metric("quality", "format_compliance"),
    "quality_rating": rating("quality"),
    "stress_status": profile_status("stress"),
    "stress_max_temp": metric("stress", "max_temperature_celsius"),
    "stress_tps": metric("stress", "tokens_per_second"),
    "stress_tps_drift": metric("stress", "tokens_per_second_drift_percent"),
    "stress_throttled": metric("stress", "throttled"),
    "stress_swap_bytes": metric("stress", "swap_used_bytes"),
    "stress_rating": rating("stress"),
}


def cell_row(cell: CellResult) -> list[Any]:
    """One row; missing values are empty cells, not "None"."""
    values = (get(cell) for get in COLUMNS.values())
    return ["" if value is None else value for value in values]


def render_csv(data: ReportData) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(cell_row(cell) for cell in data.cells)
    return buffer.getvalue()
