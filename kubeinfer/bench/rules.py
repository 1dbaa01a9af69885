"""The six early-termination rules of the seed design, as pure functions over finished cells.

Each rule that fires returns a `Skip` naming itself and a reason a person can act on. The runner (local or
in-cluster) asks `skip_before_run` before a cell, `preflight_memory` once the cell's estimate is known,
and `select_stress_cell` after the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.bench.planner import PlannedCell
from kubeinfer.bench.quantization import bits_per_weight, estimated_file_gb
from kubeinfer.bench.ratings import RATING_RANK
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, CellStatus, Rule

GIB = 1024**3


@dataclass(frozen=True)
class Skip:
    rule: Rule
    reason: str


def preflight_memory(estimated_gb: float, limit_gb: float) -> Skip | None:
    """Rule 1: never load a model whose estimated footprint exceeds the memory limit."""
    if estimated_gb > limit_gb:
        return Skip(
            Rule.preflight_memory,
            f"estimated {estimated_gb:.2f} GB exceeds the memory limit of {limit_gb:.2f} GB",
        )
    return None


def load_failure(cell: PlannedCell, finished: list[CellResult]) -> Skip | None:
    """Rule 2: once a model failed to load, it is too large for this hardware at every quantization."""
    for done in finished:
        if done.model == cell.model.name and done.rule == Rule.load_failure and done.status == CellStatus.failed:
            return Skip(Rule.load_failure, f"{done.model} failed to load at {done.quantization}; marked too large")
    return None


def performance_threshold(cell: PlannedCell, finished: list[CellResult]) -> Skip | None:
    """Rule 3: a model that missed the interactive thresholds stops larger models at the same quantization.

    "Missed" is the rating's verdict, so it is noise-aware: a miss inside the measured interval leaves the
    interactive profile passed and never fires this rule.
    """
    for done in finished:
        if (
            done.quantization == cell.quantization
            and done.status == CellStatus.failed
            and done.rule == Rule.performance_threshold
            and done.model_size_b < cell.model.parameters_billion
        ):
            return Skip(
                Rule.performance_threshold,
                f"smaller {done.model} already missed the performance thresholds at {done.quantization}",
            )
    return None


def quantization_path(cell: PlannedCell, finished: list[CellResult], failures_needed: int) -> Skip | None:
    """Rule 4: if enough lower-precision quantizations of a model failed, a higher one will fail too."""
    bits = bits_per_weight(cell.quantization)
    lower = [
        d
        for d in finished
        if d.model == cell.model.name
        and bits_per_weight(d.quantization) < bits
        and d.status.finished
        and d.status != CellStatus.skipped
    ]
    failed = [d for d in lower if d.status == CellStatus.failed]
    if lower and len(failed) == len(lower) and len(failed) >= failures_needed:
        quants = ", ".join(d.quantization for d in failed)
        return Skip(Rule.quantization_path, f"{cell.model.name} failed at {quants}; {cell.quantization} needs more")
    return None


def memory_trend(cell: PlannedCell, finished: list[CellResult], limit_gb: float, margin_percent: float) -> Skip | None:
    """Rule 5: fit peak memory against estimated file size over finished cells; skip predicted failures."""
    points = [
        (estimated_file_gb(d.model_size_b, d.quantization), d.peak_memory_gb) for d in finished if d.peak_memory_gb
    ]
    xs = {x for x, _ in points}
    if len(xs) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points if y is not None) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * ((y or 0) - mean_y) for x, y in points) / var
    intercept = mean_y - slope * mean_x
    predicted = intercept + slope * estimated_file_gb(cell.model.parameters_billion, cell.quantization)
    with_margin = predicted * (1 + margin_percent / 100)
    if with_margin > limit_gb:
        return Skip(
            Rule.memory_trend,
            f"memory trend of {n} finished cells predicts {predicted:.2f} GB "
            f"(+{margin_percent:.0f}% margin) above the {limit_gb:.2f} GB limit",
        )
    return None


def skip_before_run(
    cell: PlannedCell, finished: list[CellResult], spec: BenchmarkMatrixSpec, limit_gb: float
) -> Skip | None:
    """Rules 2 to 5, in the order that gives the most specific reason."""
    return (
        load_failure(cell, finished)
        or performance_threshold(cell, finished)
        or quantization_path(cell, finished, spec.termination.quantization_path_failures)
        or memory_trend(cell, finished, limit_gb, spec.termination.memory_trend_margin_percent)
    )


def select_stress_cell(finished: list[CellResult]) -> CellResult | None:
    """Rule 6: stress the last passing configuration (largest footprint rated acceptable or better)."""
    candidates = [
        d
        for d in finished
        if d.status in (CellStatus.passed, CellStatus.partial)
        and RATING_RANK.get(_interactive_rating(d) or "failed", 0) >= RATING_RANK["acceptable"]
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (estimated_file_gb(d.model_size_b, d.quantization), d.model_size_b))


def _interactive_rating(cell: CellResult) -> str | None:
    profile = cell.profiles.get("interactive")
    if profile is None or profile.status == "skipped":
        return "acceptable" if cell.status == CellStatus.passed else None
    return profile.rating
