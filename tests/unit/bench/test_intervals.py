"""95% intervals of repeated measurements, and thresholds that fail only when the whole interval is past them."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import pytest

from kubeinfer.bench.intervals import (
    batch_intervals,
    beyond,
    bootstrap_interval,
    bootstrap_rows_interval,
    clustered_quantile_intervals,
    describe,
    interval_of,
    mean_interval,
    mean_intervals,
    minimum_samples,
    overlap,
    quantile_interval,
    quantile_ranks,
    t_critical,
    within_noise,
)
from kubeinfer.bench.load.stats import percentile
from kubeinfer.bench.profiles import batch, interactive
from kubeinfer.bench.report import write_reports
from kubeinfer.resources.benchmark_matrix import BatchProfile, CellResult, CellStatus, InteractiveProfile, ProfileResult

#: The quickstart's flip from the issue: 4 identical runs, one of them at 23.2% against a 20% limit.
NOISY_VARIANCE = {"variance_percent": 23.2, "variance_percent_interval": [14.1, 32.3]}


def test_mean_interval_is_students_t_over_the_repeats() -> None:
    # Textbook case: mean 3, s = 1.5811, n = 5, t(0.975, 4) = 2.776 -> 3 +- 1.963.
    assert mean_interval([1, 2, 3, 4, 5]) == pytest.approx([1.0371, 4.9629], abs=1e-4)


def test_fewer_than_two_values_give_no_interval() -> None:
    assert mean_interval([4.0]) is None
    assert mean_interval([]) is None
    assert bootstrap_interval([4.0], statistics.fmean) is None
    assert mean_intervals({"tokens_per_second": [10.0], "ttft_seconds": [0.1, 0.3]}) == {
        "ttft_seconds_interval": [-1.0706, 1.4706]  # t(0.975, 1) = 12.706: two repeats say little
    }


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (4, 2.776), (30, 2.042), (40, 2.021), (120, 1.980)])
def test_t_critical_matches_the_tables(df: int, expected: float) -> None:
    assert t_critical(df) == pytest.approx(expected, abs=1.5e-3)


def test_t_critical_refuses_zero_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="at least 1 degree of freedom"):
        t_critical(0)


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    seconds = [10, 11, 10.5, 12, 11, 10.2, 10.8, 11.5, 12.2, 11.1, 10.9, 11.3]
    first = bootstrap_interval(seconds, statistics.fmean)
    assert first == bootstrap_interval(seconds, statistics.fmean)
    assert first is not None
    assert first[0] < statistics.fmean(seconds) < first[1]
    assert bootstrap_interval([5.0, 5.0, 5.0], statistics.fmean) == [5.0, 5.0]


def test_batch_intervals_cover_the_judged_metrics() -> None:
    seconds = [10, 11, 10.5, 12, 11, 10.2, 10.8, 11.5, 12.2, 11.1, 10.9, 11.3]
    found = batch_intervals(seconds, window=5)
    assert set(found) == {
        "seconds_per_document_interval",
        "throughput_docs_per_hour_interval",
        "variance_percent_interval",
        "degradation_percent_interval",
    }
    low, high = found["seconds_per_document_interval"]
    assert found["throughput_docs_per_hour_interval"] == [round(3600 / high, 2), round(3600 / low, 2)]
    cv = statistics.stdev(seconds) / statistics.fmean(seconds) * 100
    assert found["variance_percent_interval"][0] < cv < found["variance_percent_interval"][1]
    assert batch_intervals([10.0], window=0) == {}


def test_a_miss_inside_the_interval_is_noise_not_a_failure() -> None:
    assert not beyond(NOISY_VARIANCE, "variance_percent", 20, higher_is_better=False)
    assert within_noise(NOISY_VARIANCE, "variance_percent", 20, higher_is_better=False)
    assert describe(NOISY_VARIANCE, "variance_percent") == " (95% CI 14.1-32.3)"
    certain = {"variance_percent": 23.2, "variance_percent_interval": [21.0, 25.4]}
    assert beyond(certain, "variance_percent", 20, higher_is_better=False)
    assert not within_noise(certain, "variance_percent", 20, higher_is_better=False)


def test_without_an_interval_the_value_alone_decides() -> None:
    assert beyond({"tokens_per_second": 1.9}, "tokens_per_second", 2, higher_is_better=True)
    assert not beyond({"tokens_per_second": 2.0}, "tokens_per_second", 2, higher_is_better=True)
    assert not beyond({"tokens_per_second": None}, "tokens_per_second", 2, higher_is_better=True)
    broken = {"tokens_per_second": 1.9, "tokens_per_second_interval": ["a", 3]}
    assert beyond(broken, "tokens_per_second", 2, higher_is_better=True)
    assert describe(broken, "tokens_per_second") == ""


def test_overlap() -> None:
    assert overlap((1.0, 2.0), (2.0, 3.0))
    assert not overlap((1.0, 2.0), (2.1, 3.0))


def test_interactive_failures_ignore_a_noisy_miss_and_name_a_certain_one() -> None:
    base = {"ttft_seconds": 0.5, "tokens_per_second": 20.0}
    assert interactive.failures(base | NOISY_VARIANCE, InteractiveProfile()) == []
    certain = base | {"variance_percent": 23.2, "variance_percent_interval": [21.0, 25.4]}
    assert interactive.failures(certain, InteractiveProfile()) == ["inter-token variance 23.2% (95% CI 21-25.4) > 20%"]


def test_batch_failures_ignore_a_noisy_miss() -> None:
    metrics = {
        "documents": 10,
        "variance_percent": 23.2,
        "variance_percent_interval": [14.1, 32.3],
        "degradation_percent": 25.0,
        "degradation_percent_interval": [21.0, 30.0],
        "memory_drift_percent": 1.0,
    }
    assert batch.failures(metrics, BatchProfile()) == [
        "the last documents were slower: degradation 25.0% (95% CI 21-30) > 20%"
    ]


def test_the_csv_report_carries_the_interval_ends(tmp_path: Path) -> None:
    metrics = {"tokens_per_second": 20.0, "tokens_per_second_interval": [18.5, 21.5], "variance_percent": 9.0}
    cell = CellResult(
        model="m",
        quantization="Q4_1",
        model_size_b=0.135,
        status=CellStatus.passed,
        profiles={"interactive": ProfileResult(status="passed", metrics=metrics)},
    )
    path = write_reports({"results": [cell]}, tmp_path, ["csv"])["csv"]
    (row,) = csv.DictReader(path.read_text().splitlines())
    assert (row["interactive_tps_low"], row["interactive_tps"], row["interactive_tps_high"]) == ("18.5", "20.0", "21.5")
    assert (row["interactive_variance_low"], row["interactive_variance_high"]) == ("", "")


def test_a_percentile_interval_is_bounded_by_order_statistics() -> None:
    eight = [3.0, 3.1, 2.9, 4.1, 4.0, 3.05, 4.2, 2.95]
    # ranks 1 to 8 of 8: the 7th is below the true median with P(B >= 7) = 9/256 = 3.5%, past 2.5%
    assert quantile_interval(eight, 50) == [2.9, 4.2]
    assert quantile_interval(eight, 99) == [4.1, None]
    many = [float(i) for i in range(1, 1001)]
    low, high = quantile_interval(many, 50) or (0.0, 0.0)
    assert 460 < low < 500 < high < 540  # type: ignore[operator]
    assert quantile_interval([1.0], 50) is None


@pytest.mark.parametrize("pct", [50, 90, 95, 99])
def test_a_percentile_interval_holds_its_point_estimate(pct: float) -> None:
    for n in (2, 3, 5, 8, 16, 40, 200, 400):
        values = [((i * 7919) % 101) / 10 for i in range(n)]
        low, high = quantile_interval(values, pct) or (0.0, 0.0)
        estimate = percentile(values, pct)
        assert estimate is not None
        assert low is None or low <= estimate
        assert high is None or estimate <= high


@pytest.mark.parametrize(("pct", "needed"), [(50, 6), (90, 36), (95, 72), (99, 368)])
def test_a_percentile_needs_enough_values_for_both_ends(pct: float, needed: int) -> None:
    """Below the minimum, even the largest value sits under the true percentile more than 2.5% of the time
    (q^n > 2.5%): the top is open, not the largest value."""
    assert minimum_samples(pct) == needed
    assert (pct / 100) ** (needed - 1) > 0.025 >= (pct / 100) ** needed
    assert quantile_ranks(needed, pct)[1] == needed
    assert quantile_ranks(needed - 1, pct)[1] is None
    values = [float(i) for i in range(needed)]
    assert None not in (quantile_interval(values, pct) or [None])
    assert (quantile_interval(values[1:], pct) or [0.0, 0.0])[1] is None


def test_the_exact_ranks_miss_at_most_2_5_percent_a_side() -> None:
    """Checked against the binomial directly: B, the values below the true percentile, is binomial(n, q)."""
    for n, pct in ((8, 50), (40, 90), (100, 95), (400, 99), (1000, 50)):
        q = pct / 100
        pmf = [math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
        lower, upper = quantile_ranks(n, pct)
        assert lower is not None
        assert upper is not None
        assert sum(pmf[:lower]) <= 0.025 < sum(pmf[: lower + 1])  # B < lower: the lower end is above it
        assert sum(pmf[upper:]) <= 0.025 < sum(pmf[upper - 1 :])  # B >= upper: the upper end is below it


def test_an_open_end_reads_as_unbounded_and_never_as_certain() -> None:
    metrics = {"ttft_p95_seconds": 6.0, "ttft_p95_seconds_interval": [4.0, None]}
    assert interval_of(metrics, "ttft_p95_seconds") == (4.0, math.inf)
    assert describe(metrics, "ttft_p95_seconds") == " (95% CI 4-∞)"
    assert not beyond(metrics, "ttft_p95_seconds", 5.0, higher_is_better=False)
    assert within_noise(metrics, "ttft_p95_seconds", 5.0, higher_is_better=False)
    assert beyond(metrics, "ttft_p95_seconds", 3.0, higher_is_better=False), "its bottom is bounded"
    assert interval_of({"x": 1.0, "x_interval": [None, None]}, "x") == (-math.inf, math.inf)
    assert interval_of({"x": 1.0, "x_interval": [True, 2.0]}, "x") is None


def test_inter_token_gaps_of_one_request_move_together() -> None:
    """Eight requests of 47 gaps each, every request at its own pace: pooled as independent values the median
    looks exact to ±2%, but a request drawn again moves it by its whole pace."""
    paces = [0.040, 0.052, 0.045, 0.060, 0.043, 0.049, 0.055, 0.047]
    groups = [[pace * (1 + 0.01 * ((i * 7) % 5 - 2)) for i in range(47)] for pace in paces]
    pooled = [gap for group in groups for gap in group]
    naive = quantile_interval(pooled, 50)
    clustered = clustered_quantile_intervals(groups, (50, 95))
    assert naive is not None
    assert None not in naive
    low, high = clustered[50]
    assert low is not None
    assert high is not None
    assert (high - low) > 2 * (naive[1] - naive[0])  # type: ignore[operator]
    assert low <= naive[0] <= naive[1] <= high  # type: ignore[operator]
    assert clustered == clustered_quantile_intervals(groups, (50, 95)), "seeded"
    assert clustered_quantile_intervals([[0.1]], (50,)) == {}


def test_a_row_bootstrap_resamples_rows_whole() -> None:
    """Each row's fields stay together: a ratio that is the same in every row has no spread at all."""
    rows = [(1.0, 10.0), (2.0, 20.0), (4.0, 40.0), (3.0, 30.0)]
    assert bootstrap_rows_interval(rows, lambda drawn: sum(b for _, b in drawn) / sum(a for a, _ in drawn)) == [
        10.0,
        10.0,
    ]
    first = bootstrap_rows_interval(rows, lambda drawn: sum(a for a, _ in drawn))
    assert first == bootstrap_rows_interval(rows, lambda drawn: sum(a for a, _ in drawn)), "seeded"
    assert first is not None
    assert first[0] < 10 < first[1]
    assert bootstrap_rows_interval(rows[:1], lambda drawn: 1.0) is None
