"""Ratings of profile metrics against the spec's thresholds, and the real-world translation table."""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.bench.ratings import (
    TRANSLATIONS,
    interpret,
    interpret_metrics,
    rate_metrics,
    rate_profile,
)
from kubeinfer.resources.benchmark_matrix import BatchProfile, InteractiveProfile, ProfileResult, Profiles, Slo

DEFAULTS = Profiles()
GIB = 1024**3


def interactive(tps: float, ttft: float, variance: float = 5.0) -> dict[str, Any]:
    return {"tokens_per_second": tps, "ttft_seconds": ttft, "variance_percent": variance}


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (interactive(3.0, 15.0, 10.0), "excellent"),  # exactly 50% better on all three (thresholds 2, 30, 20)
        (interactive(2.99, 15.0, 10.0), "good"),
        (interactive(2.4, 24.0, 16.0), "good"),  # exactly 20% better
        (interactive(2.39, 24.0, 16.0), "acceptable"),
        (interactive(2.0, 30.0, 20.0), "acceptable"),  # exactly at the thresholds
        (interactive(50.0, 0.5, 20.5), "poor"),  # jitter is not critical
        (interactive(1.99, 0.5, 1.0), "failed"),
        (interactive(50.0, 30.1, 1.0), "failed"),
    ],
)
def test_interactive_rating_boundaries(metrics: dict[str, Any], expected: str) -> None:
    assert rate_metrics("interactive", metrics, DEFAULTS) == expected


def test_rating_uses_the_specs_thresholds_not_the_defaults() -> None:
    strict = Profiles(interactive=InteractiveProfile(min_tokens_per_second=10))
    metrics = interactive(8.0, 1.0, 1.0)
    assert rate_metrics("interactive", metrics, DEFAULTS) == "excellent"
    assert rate_metrics("interactive", metrics, strict) == "failed"


def test_missing_metric_is_not_held_against_the_profile() -> None:
    assert rate_metrics("interactive", {"tokens_per_second": 30.0, "ttft_seconds": 1.0}, DEFAULTS) == "excellent"
    assert rate_metrics("interactive", {}, DEFAULTS) is None


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ((90, 87.5, 87.5, 95), "excellent"),  # half the headroom to 100 (thresholds 80, 75, 75, 90)
        ((84, 80, 80, 92), "good"),  # a fifth of it
        ((80, 75, 75, 90), "acceptable"),
        ((100, 100, 100, 89), "poor"),  # format is not critical
        ((79, 100, 100, 100), "failed"),  # math is
    ],
)
def test_quality_scores_are_rated_on_the_headroom_to_100(scores: tuple[float, ...], expected: str) -> None:
    names = ("math_score", "comprehension_score", "reasoning_score", "format_compliance")
    assert rate_metrics("quality", dict(zip(names, scores, strict=True)), DEFAULTS) == expected


def long_context(load: float, max_ok: int = 32768, swap: int = 0) -> dict[str, Any]:
    by_context = {"4096": 1.0, "8192": 2.0, "16384": 5.0, "32768": load}
    return {
        "load_seconds_by_context": by_context,
        "max_context_ok": max_ok,
        "initial_load_seconds": load,
        "swap_used_bytes": swap,
    }


def test_long_context_ratings() -> None:
    assert rate_metrics("long_context", long_context(30.0), DEFAULTS) == "excellent"
    assert rate_metrics("long_context", long_context(60.0), DEFAULTS) == "acceptable"
    assert rate_metrics("long_context", long_context(60.5), DEFAULTS) == "failed"
    assert rate_metrics("long_context", long_context(10.0, max_ok=16384), DEFAULTS) == "poor"
    assert rate_metrics("long_context", long_context(10.0, swap=4096), DEFAULTS) == "poor"
    assert rate_metrics("long_context", long_context(10.0, max_ok=0), DEFAULTS) == "failed"


def test_long_context_judged_on_the_attempted_sizes() -> None:
    """A model with an 8k context is not poor for missing 32k it never tried."""
    metrics = {
        "load_seconds_by_context": {"4096": 1.0, "8192": 2.0},
        "max_context_ok": 8192,
        "initial_load_seconds": 2.0,
        "swap_used_bytes": 0,
    }
    assert rate_metrics("long_context", metrics, DEFAULTS) == "excellent"


def batch(documents: int = 30, variance: float = 5.0, degradation: float = 2.0, drift: float = 1.0) -> dict[str, Any]:
    return {
        "documents": documents,
        "seconds_per_document": 40.0,
        "throughput_docs_per_hour": 90.0,
        "variance_percent": variance,
        "degradation_percent": degradation,
        "memory_drift_percent": drift,
    }


def test_batch_ratings() -> None:
    assert rate_metrics("batch", batch(), DEFAULTS) == "excellent"
    assert rate_metrics("batch", batch(degradation=-30.0), DEFAULTS) == "excellent"  # got faster
    assert rate_metrics("batch", batch(variance=16.0), DEFAULTS) == "good"
    assert rate_metrics("batch", batch(degradation=25.0), DEFAULTS) == "poor"
    assert rate_metrics("batch", batch(drift=11.0), DEFAULTS) == "poor"
    assert rate_metrics("batch", batch(documents=0), DEFAULTS) == "failed"


def stress(temp: float | None = 55.0, **overrides: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "duration_seconds": 1800.0,
        "tokens_per_second": 12.0,
        "tokens_per_second_drift_percent": -3.0,
        "max_temperature_celsius": temp,
        "throttled": False,
        "swap_used_bytes": 0,
        "aborted": False,
        "samples": [],
    }
    return metrics | overrides


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (stress(55.0), "excellent"),  # half of the 60 °C headroom between a 25 °C room and 85 °C
        (stress(73.0), "good"),
        (stress(85.0), "acceptable"),
        (stress(86.0), "poor"),
        (stress(90.5), "failed"),  # above the abort temperature
        (stress(None), "excellent"),  # no sensor: temperature cannot count against it
        (stress(50.0, throttled=True), "poor"),
        (stress(50.0, swap_used_bytes=GIB), "poor"),
        (stress(50.0, tokens_per_second_drift_percent=-25.0), "poor"),
        (stress(50.0, tokens_per_second_drift_percent=25.0), "poor"),
        (stress(50.0, aborted=True), "failed"),
    ],
)
def test_stress_ratings(metrics: dict[str, Any], expected: str) -> None:
    assert rate_metrics("stress", metrics, DEFAULTS) == expected


@pytest.mark.parametrize("status", ["skipped", "error"])
def test_skipped_and_error_profiles_get_no_rating(status: str) -> None:
    result = ProfileResult(status=status, metrics=interactive(30.0, 1.0), rating="good")
    assert rate_profile("interactive", result, DEFAULTS).rating is None


def test_failed_profile_is_rated_failed_whatever_its_metrics() -> None:
    result = ProfileResult(status="failed", metrics=interactive(30.0, 1.0), reason="server crashed")
    rated = rate_profile("interactive", result, DEFAULTS)
    assert (rated.status, rated.rating, rated.reason) == ("failed", "failed", "server crashed")


def test_passed_profile_missing_a_critical_threshold_becomes_failed() -> None:
    result = ProfileResult(status="passed", metrics=interactive(1.5, 2.0))
    rated = rate_profile("interactive", result, DEFAULTS)
    assert rated.status == "failed"
    assert rated.rating == "failed"
    assert rated.reason is not None
    assert "tokens_per_second" in rated.reason
    assert result.status == "passed"
    assert result.rating is None


def test_rate_profile_adds_interpretations() -> None:
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=interactive(18.5, 2.3)), DEFAULTS)
    assert rated.rating == "excellent"
    assert rated.interpretation == {
        "tokens_per_second": "Fast reading, feels responsive",
        "ttft_seconds": "Barely noticeable pause",
    }


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("tokens_per_second", 1.99, "Too slow to read along, batch use only"),
        ("tokens_per_second", 2.0, "Slow but readable, like careful dictation"),
        ("tokens_per_second", 10.0, "Comfortable reading speed"),
        ("tokens_per_second", 39.9, "Very fast, excellent UX"),
        ("tokens_per_second", 40.0, "Nearly instant for most prompts"),
        ("server_tokens_per_second", 12.0, "Comfortable reading speed"),
        ("ttft_seconds", 1.5, "Feels instant, excellent UX"),
        ("ttft_seconds", 30.0, "Significant wait, breaks flow"),  # the 30 s limit still passes
        ("ttft_seconds", 30.01, "Frustrating, unusable for interactive"),
        ("server_ttft_seconds", 4.0, "Barely noticeable pause"),
        ("context_load_seconds", 4.9, "Smooth workflow"),
        ("initial_load_seconds", 60.0, "Coffee break territory"),
        ("initial_load_seconds", 61.0, "Too slow for practical use"),
        ("memory_gb", 5.9, "Plenty of headroom"),
        ("memory_gb", 14.0, "Most of system RAM"),
        ("memory_gb", 14.1, "Swapping likely, severe degradation"),
        ("peak_rss_bytes", 7 * GIB, "Room for other apps"),
        ("throughput_docs_per_hour", 9.0, "Only for small batches"),
        ("throughput_docs_per_hour", 45.0, "Reasonable for moderate batches"),
        ("throughput_docs_per_hour", 500.0, "Excellent throughput"),
        ("temperature_celsius", 69.0, "Cool, no concerns"),
        ("max_temperature_celsius", 85.0, "Hot, ensure good airflow"),
        ("max_temperature_celsius", 90.0, "Thermal limit approaching"),
        ("max_temperature_celsius", 95.0, "Too hot, reduce load"),
        ("math_score", 95.0, "Accuracy retained, safe for all uses"),
        ("math_score", 70.0, "Usable with checking, avoid for financial work"),
    ],
)
def test_translation_table_edges(metric: str, value: float, expected: str) -> None:
    assert interpret(metric, value) == expected


def test_translation_table_covers_the_seeds_metrics() -> None:
    assert {
        "tokens_per_second",
        "ttft_seconds",
        "context_load_seconds",
        "memory_gb",
        "throughput_docs_per_hour",
        "temperature_celsius",
    } <= set(TRANSLATIONS)


def test_interpret_rejects_unknown_metrics() -> None:
    with pytest.raises(ValueError, match="no real-world translation"):
        interpret("variance_percent", 3.0)


def test_interpret_metrics_skips_non_numbers_and_reads_each_context_size() -> None:
    result = interpret_metrics(
        {"max_temperature_celsius": None, "throttled": True, "load_seconds_by_context": {"4096": 3.0, "32768": 45.0}}
    )
    assert result == {
        "load_seconds_by_context.4096": "Smooth workflow",
        "load_seconds_by_context.32768": "Coffee break territory",
    }


# --- Noise: a threshold misses only when the whole interval is past it ---------------------------------


def test_a_miss_inside_the_interval_rates_acceptable_and_says_within_noise() -> None:
    """The issue's example: 23.2% inter-token variance against a 20% limit, on one of four identical runs."""
    metrics = interactive(30.0, 1.0, 23.2) | {"variance_percent_interval": [14.1, 32.3]}
    assert rate_metrics("interactive", metrics, DEFAULTS) == "acceptable"
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=metrics), DEFAULTS)
    assert (rated.status, rated.rating) == ("passed", "acceptable")
    assert rated.reason == "within noise: variance_percent 23.2 (95% CI 14.1-32.3) vs at most 20"


def test_a_miss_with_the_whole_interval_past_the_threshold_still_counts() -> None:
    metrics = interactive(30.0, 1.0, 23.2) | {"variance_percent_interval": [21.0, 25.4]}
    assert rate_metrics("interactive", metrics, DEFAULTS) == "poor"
    assert rate_profile("interactive", ProfileResult(status="passed", metrics=metrics), DEFAULTS).reason is None


def test_a_critical_miss_fails_only_when_the_interval_is_below_the_minimum() -> None:
    noisy = interactive(1.8, 1.0) | {"tokens_per_second_interval": [1.2, 2.4]}
    assert rate_profile("interactive", ProfileResult(status="passed", metrics=noisy), DEFAULTS).status == "passed"
    certain = interactive(1.8, 1.0) | {"tokens_per_second_interval": [1.6, 1.95]}
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=certain), DEFAULTS)
    assert (rated.status, rated.rating) == ("failed", "failed")
    assert rated.reason == "critical tokens_per_second should be at least 2 (measured 1.8 (95% CI 1.6-1.95))"


def test_an_interval_never_lifts_a_rating_above_acceptable_or_lowers_a_pass() -> None:
    """Grades above acceptable come from the value; an interval reaching past a met threshold changes nothing."""
    metrics = interactive(3.0, 15.0, 10.0) | {"variance_percent_interval": [1.0, 40.0]}
    assert rate_metrics("interactive", metrics, DEFAULTS) == "excellent"


# --- SLOs: goodput and the latency limits ----------------------------------------------------------------


def with_slo(**limits: float) -> Profiles:
    slo = Slo(**limits)
    return Profiles(interactive=InteractiveProfile(slo=slo), batch=BatchProfile(slo=slo))


def test_no_goodput_fails_a_profile_with_an_slo() -> None:
    profiles = with_slo(ttft_seconds=1.0)
    metrics = interactive(30.0, 1.0) | {"goodput_rps": 0.0, "ttft_p95_seconds": 4.0}
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=metrics), profiles)
    assert (rated.status, rated.rating) == ("failed", "failed")
    assert rated.reason == "critical goodput_rps is 0: no request met every SLO limit"
    batch_rated = rate_profile("batch", ProfileResult(status="passed", metrics=batch() | metrics), profiles)
    assert batch_rated.rating == "failed"


def test_slo_percentiles_grade_the_room_the_limits_leave() -> None:
    profiles = with_slo(ttft_seconds=1.0, itl_seconds=0.1)
    base = interactive(30.0, 0.5) | {"goodput_rps": 2.5}
    assert rate_metrics("interactive", base | {"ttft_p95_seconds": 0.5, "itl_p95_seconds": 0.05}, profiles) == (
        "excellent"
    )
    assert rate_metrics("interactive", base | {"ttft_p95_seconds": 0.9, "itl_p95_seconds": 0.05}, profiles) == (
        "acceptable"
    )
    assert rate_metrics("interactive", base | {"ttft_p95_seconds": 1.2, "itl_p95_seconds": 0.05}, profiles) == "poor"


def test_the_slo_percentile_picks_the_metric() -> None:
    profiles = with_slo(e2e_seconds=2.0, percentile=99)
    metrics = interactive(30.0, 0.5) | {"goodput_rps": 1.0, "e2e_p95_seconds": 1.0, "e2e_p99_seconds": 3.0}
    assert rate_metrics("interactive", metrics, profiles) == "poor"


def test_without_an_slo_goodput_and_percentiles_are_not_judged() -> None:
    metrics = interactive(30.0, 1.0, 1.0) | {"goodput_rps": 0.0, "ttft_p95_seconds": 99.0}
    assert rate_metrics("interactive", metrics, DEFAULTS) == "excellent"
