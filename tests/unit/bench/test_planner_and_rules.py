"""Matrix order and the six early-termination rules, as pure functions."""

from __future__ import annotations

import pytest

from kubeinfer.bench.outcome import judge_cell
from kubeinfer.bench.planner import PlanError, plan
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.bench.rules import (
    load_failure,
    memory_trend,
    performance_threshold,
    preflight_memory,
    quantization_path,
    select_stress_cell,
    skip_before_run,
)
from kubeinfer.resources.benchmark_matrix import (
    BenchmarkMatrixSpec,
    CellResult,
    CellStatus,
    ProfileResult,
    Profiles,
    Rule,
)

LADDER = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]


def spec(mode: str = "full", sizes: tuple[str, ...] = ("1B", "7B", "3B")) -> BenchmarkMatrixSpec:
    models = [
        {"name": f"m{size.lower()}", "size": size, "files": {q: f"hf://org/m/{q}.gguf" for q in LADDER}}
        for size in sizes
    ]
    return BenchmarkMatrixSpec.model_validate({"models": models, "mode": mode})


def done(
    model: str,
    size_b: float,
    quant: str,
    status: CellStatus,
    rule: Rule | None = None,
    peak_gb: float | None = None,
    rating: str | None = "good",
) -> CellResult:
    profiles = {"interactive": ProfileResult(status="passed", rating=rating)}  # type: ignore[arg-type]
    return CellResult(
        model=model,
        quantization=quant,
        model_size_b=size_b,
        status=status,
        rule=rule,
        peak_memory_gb=peak_gb,
        profiles=profiles,
    )


def test_full_mode_traverses_by_quantization_q4_k_m_first_small_models_first() -> None:
    keys = [c.key for c in plan(spec())]
    assert keys[:3] == ["m1b/Q4_K_M", "m3b/Q4_K_M", "m7b/Q4_K_M"]
    assert [k.split("/")[1] for k in keys[::3]] == ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "Q8_0"]


def test_quick_mode_runs_only_the_quick_quantizations() -> None:
    assert {c.quantization for c in plan(spec("quick"))} == {"Q4_K_M", "Q5_K_M"}


def test_quick_mode_without_matching_quantizations_is_a_clear_error() -> None:
    only_q8 = BenchmarkMatrixSpec.model_validate(
        {"mode": "quick", "models": [{"name": "m", "size": "1B", "files": {"Q8_0": "pypi:smollm2-135m"}}]}
    )
    with pytest.raises(PlanError, match="mode quick runs only Q4_K_M, Q5_K_M"):
        plan(only_q8)


def test_unlisted_quantizations_follow_the_order_in_manifest_order() -> None:
    s = BenchmarkMatrixSpec.model_validate(
        {
            "models": [
                {
                    "name": "m",
                    "size": "1B",
                    "files": {
                        "Q4_1": "pypi:smollm2-135m",
                        "Q8_0": "quantize:Q4_1",
                        "Q4_K_M": "quantize:Q4_1",
                    },
                }
            ]
        }
    )
    assert [c.quantization for c in plan(s)] == ["Q4_K_M", "Q8_0", "Q4_1"]


def test_rule1_preflight_skips_when_estimate_exceeds_limit() -> None:
    skip = preflight_memory(15.6, 14.0)
    assert skip is not None
    assert skip.rule == Rule.preflight_memory
    assert "15.60 GB" in skip.reason
    assert preflight_memory(5.0, 14.0) is None


def test_rule2_load_failure_marks_the_model_too_large() -> None:
    cells = plan(spec())
    finished = [done("m7b", 7, "Q4_K_M", CellStatus.failed, Rule.load_failure)]
    target = next(c for c in cells if c.key == "m7b/Q5_K_M")
    skip = load_failure(target, finished)
    assert skip is not None
    assert skip.rule == Rule.load_failure
    assert "too large" in skip.reason
    assert load_failure(next(c for c in cells if c.key == "m3b/Q5_K_M"), finished) is None


def test_rule3_performance_failure_stops_larger_models_at_same_quant() -> None:
    cells = plan(spec())
    finished = [done("m3b", 3, "Q2_K", CellStatus.failed, Rule.performance_threshold)]
    assert performance_threshold(next(c for c in cells if c.key == "m7b/Q2_K"), finished) is not None
    assert performance_threshold(next(c for c in cells if c.key == "m1b/Q2_K"), finished) is None
    assert performance_threshold(next(c for c in cells if c.key == "m7b/Q4_K_M"), finished) is None


def test_rule4_quantization_path_skips_q8_after_q4_q5_q6_failed() -> None:
    cells = plan(spec())
    failed = [done("m7b", 7, q, CellStatus.failed, Rule.performance_threshold) for q in ("Q4_K_M", "Q5_K_M", "Q6_K")]
    q8 = next(c for c in cells if c.key == "m7b/Q8_0")
    skip = quantization_path(q8, failed, failures_needed=3)
    assert skip is not None
    assert skip.rule == Rule.quantization_path
    assert quantization_path(q8, failed[:2], failures_needed=3) is None
    passed_q4 = [done("m7b", 7, "Q4_K_M", CellStatus.passed), *failed[1:]]
    assert quantization_path(q8, passed_q4, failures_needed=2) is None


def test_rule4_does_not_skip_lower_precision_after_failures() -> None:
    """Q2/Q3 failing interactively keeps testing: they might still work for batch use."""
    cells = plan(spec())
    failed = [done("m7b", 7, q, CellStatus.failed, Rule.performance_threshold) for q in ("Q4_K_M", "Q5_K_M", "Q6_K")]
    assert quantization_path(next(c for c in cells if c.key == "m7b/Q3_K_M"), failed, 3) is None


def test_rule5_memory_trend_predicts_and_skips() -> None:
    cells = plan(spec(sizes=("1B", "3B", "7B")))
    finished = [
        done("m1b", 1, "Q4_K_M", CellStatus.passed, peak_gb=1.2),
        done("m3b", 3, "Q4_K_M", CellStatus.passed, peak_gb=2.6),
        done("m7b", 7, "Q4_K_M", CellStatus.passed, peak_gb=5.4),
    ]
    q8_7b = next(c for c in cells if c.key == "m7b/Q8_0")
    skip = memory_trend(q8_7b, finished, limit_gb=8.0, margin_percent=10)
    assert skip is not None
    assert skip.rule == Rule.memory_trend
    assert "predicts" in skip.reason
    assert memory_trend(q8_7b, finished, limit_gb=24.0, margin_percent=10) is None
    assert memory_trend(q8_7b, finished[:1], limit_gb=1.0, margin_percent=10) is None


def test_rule6_stress_selects_last_passing_configuration() -> None:
    finished = [
        done("m3b", 3, "Q4_K_M", CellStatus.passed, rating="excellent"),
        done("m3b", 3, "Q6_K", CellStatus.passed, rating="good"),
        done("m7b", 7, "Q4_K_M", CellStatus.partial, rating="acceptable"),
        done("m7b", 7, "Q6_K", CellStatus.failed, Rule.performance_threshold, rating="failed"),
    ]
    chosen = select_stress_cell(finished)
    assert chosen is not None
    assert chosen.key == "m7b/Q4_K_M"
    assert select_stress_cell([finished[-1]]) is None


def test_skip_before_run_prefers_the_most_specific_rule() -> None:
    cells = plan(spec())
    s = spec()
    finished = [done("m7b", 7, "Q4_K_M", CellStatus.failed, Rule.load_failure)]
    skip = skip_before_run(next(c for c in cells if c.key == "m7b/Q5_K_M"), finished, s, 14.0)
    assert skip is not None
    assert skip.rule == Rule.load_failure


def test_judge_cell() -> None:
    ok = ProfileResult(status="passed")
    assert judge_cell({"interactive": ok, "batch": ok})[0] == CellStatus.passed
    slow = ProfileResult(status="failed", reason="2.1 t/s below 5")
    assert judge_cell({"interactive": slow, "batch": ok}) == (
        CellStatus.failed,
        Rule.performance_threshold,
        "2.1 t/s below 5",
    )
    status, rule, reason = judge_cell({"interactive": ok, "quality": ProfileResult(status="failed", reason="math 40")})
    assert status == CellStatus.partial
    assert rule is None
    assert reason is not None
    assert "quality: math 40" in reason


def finished_cell(model: str, size_b: float, interactive_metrics: dict[str, float | list[float]]) -> CellResult:
    """A cell judged the way the runner judges it: the interactive profile rated, then the cell."""
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=interactive_metrics), Profiles())
    status, rule, reason = judge_cell({"interactive": rated})
    return CellResult(
        model=model,
        quantization="Q2_K",
        model_size_b=size_b,
        status=status,
        rule=rule,
        reason=reason,
        profiles={"interactive": rated},
    )


def test_rule3_does_not_fire_on_a_miss_inside_the_noise() -> None:
    """1.8 t/s against a 2 t/s minimum, but the runs' interval reaches 2.3: the smaller model did not fail."""
    cells = plan(spec())
    larger = next(c for c in cells if c.key == "m7b/Q2_K")
    noisy = finished_cell("m3b", 3, {"tokens_per_second": 1.8, "tokens_per_second_interval": [1.3, 2.3]})
    assert noisy.status == CellStatus.passed
    assert performance_threshold(larger, [noisy]) is None
    certain = finished_cell("m3b", 3, {"tokens_per_second": 1.8, "tokens_per_second_interval": [1.7, 1.9]})
    assert (certain.status, certain.rule) == (CellStatus.failed, Rule.performance_threshold)
    skip = performance_threshold(larger, [certain])
    assert skip is not None
    assert skip.rule == Rule.performance_threshold
