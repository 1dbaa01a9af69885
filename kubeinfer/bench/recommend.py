"""Recommend configurations per use case, and one overall best, from a matrix's cell results.

Only cells that ran to a verdict of passed or partial count, and within them only profiles that passed
with a rating. Every ranking is: rating first (excellent to poor), then the use case's own deciding
metrics (below, per use case), then the smaller memory footprint, then the cell key so the order is
stable from run to run.

Goodput: where a profile ran with an SLO, its metrics carry `goodput_rps` (requests per second that met
every limit), and that use case is ranked by goodput before the rating: the SLO is the user's own
statement of "good enough", so the cell that serves the most requests within it comes first. A cell
without goodput in such a ranking sorts after those with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeinfer.bench.ratings import RATING_RANK
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult

COUNTED = (CellStatus.passed, CellStatus.partial)

#: The seed's names for its use cases, keyed by the profile that measures each.
USE_CASE_TITLES: dict[str, str] = {
    "interactive": "Interactive storytelling",
    "long_context": "Long context work",
    "batch": "Document processing (batch)",
    "quality": "Accuracy critical (financial analysis)",
    "stress": "Sustained load (stress)",
}

#: Profiles averaged for the overall best; stress runs on one cell only, so it would not compare fairly.
OVERALL_PROFILES = ("interactive", "long_context", "batch", "quality")


def _num(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _desc(metrics: dict[str, Any], name: str) -> float:
    """Sort key for a higher-is-better metric: missing values sort last."""
    value = _num(metrics, name)
    return -value if value is not None else math.inf


def _asc(metrics: dict[str, Any], name: str) -> float:
    value = _num(metrics, name)
    return value if value is not None else math.inf


def _fmt(value: float | None, pattern: str) -> str | None:
    return None if value is None else pattern.format(value)


def _join(*parts: str | None) -> str:
    return ", ".join(part for part in parts if part)


def goodput_summary(m: dict[str, Any]) -> str | None:
    return _fmt(_num(m, "goodput_rps"), "{:.2f} req/s within SLO")


def interactive_summary(m: dict[str, Any]) -> str:
    return _join(
        goodput_summary(m),
        _fmt(_num(m, "tokens_per_second"), "{:.1f} t/s"),
        _fmt(_num(m, "ttft_seconds"), "{:.1f}s TTFT"),
    )


def long_context_summary(m: dict[str, Any]) -> str:
    return _join(
        _fmt(_num(m, "max_context_ok"), "{:.0f} tokens max context"),
        _fmt(_num(m, "initial_load_seconds"), "{:.1f}s load"),
    )


def batch_summary(m: dict[str, Any]) -> str:
    return _join(
        goodput_summary(m),
        _fmt(_num(m, "throughput_docs_per_hour"), "{:.0f} docs/hour"),
        _fmt(_num(m, "variance_percent"), "{:.0f}% variance"),
    )


def quality_summary(m: dict[str, Any]) -> str:
    return _join(
        _fmt(_num(m, "overall_score"), "{:.0f}% overall"),
        _fmt(_num(m, "math_score"), "{:.0f}% math"),
    )


def stress_summary(m: dict[str, Any]) -> str:
    throttled = m.get("throttled")
    return _join(
        _fmt(_num(m, "max_temperature_celsius"), "{:.0f}°C max"),
        _fmt(_num(m, "tokens_per_second"), "{:.1f} t/s sustained"),
        None if throttled is None else ("throttled" if throttled else "no throttling"),
    )


@dataclass(frozen=True)
class UseCase:
    """How one use case summarises a cell and which metrics decide between equally rated cells."""

    summary: Callable[[dict[str, Any]], str]
    tie_break: Callable[[dict[str, Any]], tuple[float, ...]]


#: Tie-breaks within a rating: interactive by speed then TTFT, long context by the largest context then
#: load time, batch by throughput then consistency, quality by overall then math score, stress by the
#: coolest run then sustained speed.
USE_CASES: dict[str, UseCase] = {
    "interactive": UseCase(interactive_summary, lambda m: (_desc(m, "tokens_per_second"), _asc(m, "ttft_seconds"))),
    "long_context": UseCase(
        long_context_summary, lambda m: (_desc(m, "max_context_ok"), _asc(m, "initial_load_seconds"))
    ),
    "batch": UseCase(batch_summary, lambda m: (_desc(m, "throughput_docs_per_hour"), _asc(m, "variance_percent"))),
    "quality": UseCase(quality_summary, lambda m: (_desc(m, "overall_score"), _desc(m, "math_score"))),
    "stress": UseCase(stress_summary, lambda m: (_asc(m, "max_temperature_celsius"), _desc(m, "tokens_per_second"))),
}


def memory_gb(cell: CellResult) -> float | None:
    """Measured peak memory, else the pre-flight estimate, else the file size."""
    for value in (cell.peak_memory_gb, cell.estimated_memory_gb, cell.model_size_gb):
        if value is not None:
            return value
    return None


def _memory_key(cell: CellResult) -> float:
    value = memory_gb(cell)
    return value if value is not None else math.inf


def rated_profile(cell: CellResult, use_case: str) -> ProfileResult | None:
    """The cell's result for a use case if it may be recommended: counted cell, passed profile, rated."""
    profile = cell.profiles.get(use_case)
    if cell.status not in COUNTED or profile is None or profile.status != "passed" or profile.rating is None:
        return None
    if profile.rating == "failed":
        return None
    return profile


GOODPUT = "goodput_rps"


def has_goodput(profile: ProfileResult | None) -> bool:
    return profile is not None and _num(profile.metrics, GOODPUT) is not None


def rank_use_case(cells: list[CellResult], use_case: str) -> list[dict[str, Any]]:
    """The recommendable cells for one use case, best first; by goodput first where any cell has it."""
    case = USE_CASES[use_case]
    entries = [(cell, profile) for cell in cells if (profile := rated_profile(cell, use_case)) is not None]
    by_goodput = any(has_goodput(profile) for _, profile in entries)
    entries.sort(
        key=lambda e: (
            _desc(e[1].metrics, GOODPUT) if by_goodput else 0.0,
            -RATING_RANK[e[1].rating or "failed"],
            case.tie_break(e[1].metrics),
            _memory_key(e[0]),
            e[0].key,
        )
    )
    ranked = []
    for cell, profile in entries:
        entry: dict[str, Any] = {"cell": cell.key, "rating": profile.rating, "summary": case.summary(profile.metrics)}
        if by_goodput:
            entry[GOODPUT] = _num(profile.metrics, GOODPUT)
        ranked.append(entry)
    return ranked


def cell_ratings(cell: CellResult) -> dict[str, str]:
    """Ratings of the profiles that count towards the overall best; failed and error profiles score 0."""
    ratings: dict[str, str] = {}
    for name in OVERALL_PROFILES:
        profile = cell.profiles.get(name)
        if profile is None or profile.status == "skipped":
            continue
        ratings[name] = profile.rating if profile.status == "passed" and profile.rating else "failed"
    return ratings


def cell_score(cell: CellResult) -> float | None:
    """Mean rating rank (0 failed .. 4 excellent) over the cell's use cases; None if it has none."""
    ratings = cell_ratings(cell)
    if not ratings:
        return None
    return sum(RATING_RANK[r] for r in ratings.values()) / len(ratings)


def cell_rating(cell: CellResult) -> str | None:
    """The cell's overall grade for heat maps: its mean rating rank rounded down to a rating name."""
    score = cell_score(cell)
    if score is None:
        return None
    floor = math.floor(score + 1e-9)
    return next(name for name, rank in RATING_RANK.items() if rank == floor)


def _overall_key(cell: CellResult) -> tuple[float, ...]:
    """Balance first (mean rating), then a clean pass over a partial one, interactive goodput (where an SLO
    gave one), speed, accuracy, small memory."""
    interactive = cell.profiles.get("interactive")
    quality = cell.profiles.get("quality")
    return (
        -(cell_score(cell) or 0.0),
        0.0 if cell.status == CellStatus.passed else 1.0,
        _desc(interactive.metrics, GOODPUT) if interactive else math.inf,
        _desc(interactive.metrics, "tokens_per_second") if interactive else math.inf,
        _desc(quality.metrics, "overall_score") if quality else math.inf,
        _memory_key(cell),
    )


def overall_candidates(cells: list[CellResult]) -> list[CellResult]:
    eligible = [cell for cell in cells if cell.status in COUNTED and cell_score(cell) is not None]
    return sorted(eligible, key=lambda cell: (_overall_key(cell), cell.key))


def overall_reasons(cell: CellResult) -> list[str]:
    ratings = cell_ratings(cell)
    balance = ", ".join(f"{name} {rating}" for name, rating in ratings.items())
    reasons = [f"balanced across use cases: {balance}"]
    memory = memory_gb(cell)
    if memory is not None:
        reasons.append(f"{memory:.1f} GB RAM")
    quality = cell.profiles.get("quality")
    overall = _num(quality.metrics, "overall_score") if quality else None
    if overall is not None:
        reasons.append(f"{overall:.0f}% quality score")
    interactive = cell.profiles.get("interactive")
    if interactive and (summary := interactive_summary(interactive.metrics)):
        reasons.append(summary)
    if cell.max_sustainable_rps is not None:
        reasons.append(f"{cell.max_sustainable_rps:.2f} req/s sustained")
    if cell.cost_per_million_output_tokens is not None:
        currency = f" {cell.currency}" if cell.currency else ""
        reasons.append(f"{cell.cost_per_million_output_tokens:.2f}{currency} per 1M output tokens")
    return reasons


def overall_best(cells: list[CellResult]) -> dict[str, Any] | None:
    candidates = overall_candidates(cells)
    if not candidates:
        return None
    best = candidates[0]
    return {
        "cell": best.key,
        "model": best.model,
        "quantization": best.quantization,
        "rating": cell_rating(best),
        "score": round(cell_score(best) or 0.0, 2),
        "reasons": overall_reasons(best),
    }


def recommend(cells: list[CellResult]) -> dict[str, Any]:
    """{use_case: [{cell, rating, summary}, ...best first], "overall_best": {...} or None}; JSON-able."""
    result: dict[str, Any] = {name: rank_use_case(cells, name) for name in USE_CASES}
    result["overall_best"] = overall_best(cells)
    return result


def best_cell(cells: list[CellResult]) -> str | None:
    """The overall best as "model/quant", for `kubectl get` printer columns."""
    candidates = overall_candidates(cells)
    return candidates[0].key if candidates else None
