"""Benchmark results as gauges, one series per cell and profile, so Grafana compares a matrix's cells.

The label set is bounded by the matrices' specs (models x quantizations x profiles); `matrix` is
`namespace/name` so that two namespaces' matrices of the same name stay apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Gauge

from kubeinfer.resources.benchmark_matrix import CellResult

GIB = 1024**3
#: Ratings as numbers, so a heat map can colour them and `max` picks the best.
RATING_SCORES = {"failed": 0, "poor": 1, "acceptable": 2, "good": 3, "excellent": 4}

_CELL = ["matrix", "model", "quantization"]
_PROFILE = [*_CELL, "profile"]

RATING = Gauge(
    "kubeinfer_bench_rating",
    "Rating of a cell's profile: 4 excellent, 3 good, 2 acceptable, 1 poor, 0 failed",
    _PROFILE,
)
PASSED = Gauge("kubeinfer_bench_profile_passed", "1 when a cell's profile passed its thresholds, else 0", _PROFILE)
TOKENS_PER_SECOND = Gauge(
    "kubeinfer_bench_tokens_per_second", "Generated tokens per second a cell's profile measured", _PROFILE
)
TTFT = Gauge(
    "kubeinfer_bench_time_to_first_token_seconds", "Mean time to first token a cell's profile measured", _PROFILE
)
LOAD_SECONDS = Gauge("kubeinfer_bench_load_seconds", "Time the cell's model server took to become ready", _CELL)
MODEL_SIZE = Gauge("kubeinfer_bench_model_size_bytes", "Size of the cell's model file", _CELL)
ESTIMATED_MEMORY = Gauge(
    "kubeinfer_bench_estimated_memory_bytes", "Memory the cell's server was sized for from GGUF metadata", _CELL
)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def publish_results(matrix: str, cells: Iterable[CellResult]) -> None:
    """Set the gauges of every finished cell; unfinished cells and absent figures leave no series."""
    for cell in cells:
        if not cell.status.finished:
            continue
        labels = (matrix, cell.model, cell.quantization)
        if cell.load_seconds is not None:
            LOAD_SECONDS.labels(*labels).set(cell.load_seconds)
        if cell.model_size_gb is not None:
            MODEL_SIZE.labels(*labels).set(cell.model_size_gb * GIB)
        if cell.estimated_memory_gb is not None:
            ESTIMATED_MEMORY.labels(*labels).set(cell.estimated_memory_gb * GIB)
        for profile, result in cell.profiles.items():
            if result.status == "skipped":
                continue
            series = (*labels, profile)
            PASSED.labels(*series).set(1 if result.status == "passed" else 0)
            if result.rating is not None:
                RATING.labels(*series).set(RATING_SCORES[result.rating])
            if (tps := _number(result.metrics.get("tokens_per_second"))) is not None:
                TOKENS_PER_SECOND.labels(*series).set(tps)
            if (ttft := _number(result.metrics.get("ttft_seconds"))) is not None:
                TTFT.labels(*series).set(ttft)
