"""Recommendations per use case and the overall best, from cell results built by hand."""

from __future__ import annotations

import json
from typing import Any

from kubeinfer.bench.recommend import best_cell, cell_rating, recommend
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult, Rating, Rule


def profile(rating: Rating | None, status: str = "passed", **metrics: Any) -> ProfileResult:
    return ProfileResult(status=status, rating=rating, metrics=metrics)


def cell(
    model: str,
    quant: str,
    status: CellStatus = CellStatus.passed,
    memory: float | None = 5.0,
    **profiles: ProfileResult,
) -> CellResult:
    return CellResult(
        model=model, quantization=quant, model_size_b=1.0, status=status, peak_memory_gb=memory, profiles=profiles
    )


def fast(rating: Rating, tps: float, ttft: float = 1.0) -> ProfileResult:
    return profile(rating, tokens_per_second=tps, ttft_seconds=ttft)


def keys(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["cell"] for entry in entries]


def test_ranked_by_rating_then_speed() -> None:
    cells = [
        cell("a", "Q4_K_M", interactive=fast("good", 40.0)),
        cell("b", "Q4_K_M", interactive=fast("excellent", 10.0)),
        cell("c", "Q4_K_M", interactive=fast("excellent", 20.0)),
        cell("d", "Q4_K_M", interactive=fast("poor", 90.0)),
    ]
    assert keys(recommend(cells)["interactive"]) == ["c/Q4_K_M", "b/Q4_K_M", "a/Q4_K_M", "d/Q4_K_M"]


def test_ties_broken_by_ttft_then_memory_then_key() -> None:
    cells = [
        cell("z", "Q8_0", memory=4.0, interactive=fast("good", 10.0, ttft=2.0)),
        cell("y", "Q8_0", memory=3.0, interactive=fast("good", 10.0, ttft=2.0)),
        cell("x", "Q8_0", memory=9.0, interactive=fast("good", 10.0, ttft=1.0)),
        cell("w", "Q8_0", memory=3.0, interactive=fast("good", 10.0, ttft=2.0)),
    ]
    assert keys(recommend(cells)["interactive"]) == ["x/Q8_0", "w/Q8_0", "y/Q8_0", "z/Q8_0"]


def test_failed_skipped_and_error_cells_are_never_recommended() -> None:
    cells = [
        cell("ok", "Q4_K_M", interactive=fast("acceptable", 3.0)),
        cell("slow", "Q2_K", CellStatus.failed, interactive=profile("failed", "failed", tokens_per_second=1.0)),
        cell("big", "Q8_0", CellStatus.skipped),
        cell("crash", "Q6_K", CellStatus.error, interactive=fast("excellent", 50.0)),
    ]
    cells[2].rule = Rule.preflight_memory
    result = recommend(cells)
    assert keys(result["interactive"]) == ["ok/Q4_K_M"]
    assert result["overall_best"]["cell"] == "ok/Q4_K_M"


def test_partial_cell_counts_only_where_its_profile_passed() -> None:
    partial = cell(
        "p",
        "Q3_K_M",
        CellStatus.partial,
        interactive=fast("good", 12.0),
        batch=profile("failed", "failed", throughput_docs_per_hour=5.0),
    )
    other = cell("o", "Q4_K_M", batch=profile("acceptable", throughput_docs_per_hour=20.0))
    result = recommend([partial, other])
    assert keys(result["interactive"]) == ["p/Q3_K_M"]
    assert keys(result["batch"]) == ["o/Q4_K_M"]


def test_entries_carry_rating_and_a_summary_like_the_seeds() -> None:
    result = recommend(
        [
            cell(
                "llama",
                "Q4_K_M",
                interactive=fast("excellent", 18.5, ttft=2.3),
                quality=profile("good", overall_score=95.0, math_score=88.0),
            )
        ]
    )
    assert result["interactive"] == [{"cell": "llama/Q4_K_M", "rating": "excellent", "summary": "18.5 t/s, 2.3s TTFT"}]
    assert result["quality"][0]["summary"] == "95% overall, 88% math"
    assert set(result) == {"interactive", "long_context", "batch", "quality", "stress", "overall_best"}
    json.dumps(result)


def test_overall_best_prefers_balance_over_one_strength() -> None:
    sprinter = cell(
        "sprinter", "Q2_K", interactive=fast("excellent", 60.0), quality=profile("poor", overall_score=55.0)
    )
    balanced = cell("balanced", "Q4_K_M", interactive=fast("good", 15.0), quality=profile("good", overall_score=88.0))
    best = recommend([sprinter, balanced])["overall_best"]
    assert best["cell"] == "balanced/Q4_K_M"
    assert best["rating"] == "good"
    assert best["reasons"][0] == "balanced across use cases: interactive good, quality good"
    assert "5.0 GB RAM" in best["reasons"]
    assert best_cell([sprinter, balanced]) == "balanced/Q4_K_M"


def test_overall_best_prefers_a_clean_pass_when_balance_is_equal() -> None:
    partial = cell(
        "a", "Q4_K_M", CellStatus.partial, interactive=fast("good", 20.0), stress=profile("failed", "failed")
    )
    passed = cell("b", "Q4_K_M", interactive=fast("good", 10.0))
    assert best_cell([partial, passed]) == "b/Q4_K_M"


def test_a_failed_profile_weighs_down_the_overall_score() -> None:
    assert (
        cell_rating(cell("m", "Q4_K_M", interactive=fast("excellent", 30.0), batch=profile("failed", "failed")))
        == "acceptable"
    )  # mean of 4 and 0
    assert cell_rating(cell("m", "Q4_K_M", status=CellStatus.skipped)) is None


def test_no_recommendation_without_a_passing_cell() -> None:
    cells = [
        cell("a", "Q2_K", CellStatus.failed, interactive=profile("failed", "failed")),
        cell("b", "Q8_0", CellStatus.skipped),
    ]
    result = recommend(cells)
    assert result["overall_best"] is None
    assert all(result[name] == [] for name in ("interactive", "long_context", "batch", "quality", "stress"))
    assert best_cell(cells) is None
    assert best_cell([]) is None


def slo(rating: Rating, goodput: float | None, tps: float = 20.0) -> ProfileResult:
    metrics: dict[str, Any] = {"tokens_per_second": tps, "ttft_seconds": 0.5}
    if goodput is not None:
        metrics["goodput_rps"] = goodput
    return ProfileResult(status="passed", rating=rating, metrics=metrics)


def test_with_an_slo_the_use_case_is_ranked_by_goodput_first() -> None:
    """Goodput is what the SLO asks for: more requests within it beats a better grade or a faster stream."""
    cells = [
        cell("a", "Q4_K_M", interactive=slo("excellent", 1.5, tps=90.0)),
        cell("b", "Q4_K_M", interactive=slo("acceptable", 3.0)),
        cell("c", "Q4_K_M", interactive=slo("good", None, tps=99.0)),
        cell("d", "Q4_K_M", interactive=slo("good", 3.0)),
    ]
    ranked = recommend(cells)["interactive"]
    assert keys(ranked) == ["d/Q4_K_M", "b/Q4_K_M", "a/Q4_K_M", "c/Q4_K_M"]
    assert [entry["goodput_rps"] for entry in ranked] == [3.0, 3.0, 1.5, None]
    assert ranked[0]["summary"] == "3.00 req/s within SLO, 20.0 t/s, 0.5s TTFT"


def test_without_goodput_the_ranking_and_entries_are_unchanged() -> None:
    cells = [
        cell("a", "Q4_K_M", interactive=slo("good", None)),
        cell("b", "Q4_K_M", interactive=slo("excellent", None)),
    ]
    ranked = recommend(cells)["interactive"]
    assert keys(ranked) == ["b/Q4_K_M", "a/Q4_K_M"]
    assert all("goodput_rps" not in entry for entry in ranked)


def test_overall_best_prefers_goodput_between_equal_grades_and_names_rate_and_cost() -> None:
    slow = cell("slow", "Q4_K_M", interactive=slo("good", 1.0, tps=80.0))
    fast = cell("fast", "Q4_K_M", interactive=slo("good", 2.0, tps=20.0))
    fast.max_sustainable_rps = 2.4
    fast.cost_per_million_output_tokens = 0.25
    fast.currency = "EUR"
    best = recommend([slow, fast])["overall_best"]
    assert best["cell"] == "fast/Q4_K_M"
    assert "2.40 req/s sustained" in best["reasons"]
    assert "0.25 EUR per 1M output tokens" in best["reasons"]
