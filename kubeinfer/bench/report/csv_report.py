"""The CSV report: one row per cell, profile metrics flattened into `<profile>_<metric>` columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from kubeinfer.bench.report.json_report import ReportData
from kubeinfer.resources.benchmark_matrix import CellResult

Getter = Callable[[CellResult], Any]


def metric(profile: str, name: str) -> Getter:
    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        return result.metrics.get(name) if result else None

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
    "threads": lambda c: c.threads,
    "status": lambda c: c.status.value,
    "rule": lambda c: c.rule.value if c.rule else None,
    "reason": lambda c: c.reason,
    "interactive_status": profile_status("interactive"),
    "interactive_ttft": metric("interactive", "ttft_seconds"),
    "interactive_tps": metric("interactive", "tokens_per_second"),
    "interactive_variance": metric("interactive", "variance_percent"),
    "interactive_rating": rating("interactive"),
    "long_context_status": profile_status("long_context"),
    "long_context_load": metric("long_context", "initial_load_seconds"),
    "long_context_max": metric("long_context", "max_context_ok"),
    "long_context_rating": rating("long_context"),
    "batch_status": profile_status("batch"),
    "batch_throughput": metric("batch", "throughput_docs_per_hour"),
    "batch_seconds_per_doc": metric("batch", "seconds_per_document"),
    "batch_variance": metric("batch", "variance_percent"),
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
