"""95% confidence intervals for repeated measurements, and threshold tests that respect them.

A threshold judged on one short run flips on a busy machine (the quickstart's 20% inter-token variance
limit tripped on 1 of 4 identical runs at 23.2%). A profile that repeats a measurement therefore stores,
next to each judged metric `m`, the interval `m_interval = [low, high]`, and a threshold fails only when
the *whole* interval lies past it.

Three methods, chosen by what the metric is:

* a **mean over repeats** (interactive tokens/s, TTFT and jitter over its runs; seconds per batch document)
  gets Student's t interval, mean ± t(0.975, n-1) · s/√n: exact for normally distributed repeats and the
  usual choice for a handful of them, where a bootstrap has too few values to resample;
* a **percentile** (TTFT, inter-token and end-to-end latency p50-p99) gets the distribution-free interval
  between the order statistics whose ranks bound it (binomial, normal approximation): no resampling;
* **any other statistic** of a sample (the batch's coefficient of variation, its first-vs-last slowdown, an
  open-loop load level's requests/s and tokens/s) gets a percentile bootstrap with a fixed seed, so the same
  measurements always give the same report. A closed-loop level's rates are a ratio of means and get Student's
  t over the requests' linearized values (load/rates.py says why each).

Fewer than two values give no interval: the metric is then judged on its value alone.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

CONFIDENCE = 0.95
SUFFIX = "_interval"
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20261205

#: t(0.975, df) for df = 1..30 (standard tables); above 30 the Cornish-Fisher expansion is exact to 1e-3.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964

Row = TypeVar("Row")


def interval_key(metric: str) -> str:
    return f"{metric}{SUFFIX}"


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"Student's t needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _rounded(low: float, high: float, digits: int) -> list[float]:
    return [round(low, digits), round(high, digits)]


def mean_interval(values: Sequence[float], digits: int = 4) -> list[float] | None:
    """Student's t 95% interval of the mean of `values`; None for fewer than two values."""
    sample = _finite(values)
    if len(sample) < 2:
        return None
    centre = statistics.fmean(sample)
    half = t_critical(len(sample) - 1) * statistics.stdev(sample) / math.sqrt(len(sample))
    return _rounded(centre - half, centre + half, digits)


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[list[float]], float | None],
    digits: int = 4,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[float] | None:
    """Percentile-bootstrap 95% interval of `statistic(values)`; None for fewer than two values."""
    return bootstrap_interval_of([values], lambda drawn: statistic(drawn[0]), digits, resamples)


def bootstrap_interval_of(
    samples: Sequence[Sequence[float]],
    statistic: Callable[[list[list[float]]], float | None],
    digits: int = 4,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[float] | None:
    """Percentile-bootstrap 95% interval of a statistic of several independent samples, each resampled alone.

    Needs at least two values in every sample. Resamples where the statistic is undefined (None) are
    dropped; if most are, there is no interval.
    """
    cleaned = [_finite(sample) for sample in samples]
    if not cleaned or any(len(sample) < 2 for sample in cleaned):
        return None
    rng = random.Random(BOOTSTRAP_SEED)
    estimates = [statistic([rng.choices(sample, k=len(sample)) for sample in cleaned]) for _ in range(resamples)]
    return _percentile_bounds(estimates, digits)


def bootstrap_rows_interval(
    rows: Sequence[Row],
    statistic: Callable[[list[Row]], float | None],
    digits: int = 4,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[float] | None:
    """Percentile-bootstrap 95% interval of a statistic of rows resampled whole (a row's fields stay together,
    e.g. one request's time and its token count). None for fewer than two rows, or when most resamples have
    no value."""
    if len(rows) < 2:
        return None
    rng = random.Random(BOOTSTRAP_SEED)
    return _percentile_bounds([statistic(rng.choices(rows, k=len(rows))) for _ in range(resamples)], digits)


def _percentile_bounds(estimates: Sequence[float | None], digits: int) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of the bootstrap estimates; None when most of them are undefined."""
    found = sorted(e for e in estimates if e is not None)
    if len(found) < len(estimates) // 2:
        return None
    tail = (1 - CONFIDENCE) / 2
    low = found[int(tail * (len(found) - 1))]
    high = found[math.ceil((1 - tail) * (len(found) - 1))]
    return _rounded(low, high, digits)


def quantile_interval(values: Sequence[float], pct: float, digits: int = 5) -> list[float] | None:
    """Distribution-free 95% interval of the `pct` percentile: the order statistics whose ranks bound it.

    The count of values below the true percentile is binomial(n, pct/100); its normal approximation gives
    the ranks nq ± z·√(nq(1-q)), widened to hold the interpolated point estimate and clamped to the values
    seen (with 8 requests a median's interval is their whole range; a p99's top is the largest value).
    None for fewer than two values.
    """
    ordered = sorted(_finite(values))
    n = len(ordered)
    if n < 2:
        return None
    q = pct / 100
    spread = _Z975 * math.sqrt(n * q * (1 - q))
    rank = (n - 1) * q
    low = max(0, min(math.floor(n * q - spread) - 1, math.floor(rank)))
    high = min(n - 1, max(math.ceil(n * q + spread) - 1, math.ceil(rank)))
    return _rounded(ordered[low], ordered[high], digits)


def mean_intervals(samples: Mapping[str, Sequence[float]], digits: int = 4) -> dict[str, list[float]]:
    """`{metric_interval: [low, high]}` for each metric averaged from repeats; metrics without one are left out."""
    found = {interval_key(name): mean_interval(values, digits) for name, values in samples.items()}
    return {key: value for key, value in found.items() if value is not None}


def _cv_percent(values: list[float]) -> float | None:
    centre = statistics.fmean(values)
    return statistics.stdev(values) / centre * 100 if centre > 0 else None


def _slowdown_percent(windows: list[list[float]]) -> float | None:
    before, after = (statistics.fmean(window) for window in windows)
    return (after - before) / before * 100 if before > 0 else None


def batch_intervals(seconds: Sequence[float], window: int) -> dict[str, list[float]]:
    """Intervals of the batch profile's metrics from its per-document times.

    Seconds per document: Student's t over the documents, and throughput its reciprocal. The coefficient of
    variation and the slowdown of the last `window` documents against the first are not means, so they are
    bootstrapped (the two windows resampled separately).
    """
    found: dict[str, list[float] | None] = {}
    per_doc = mean_interval(seconds)
    found["seconds_per_document"] = per_doc
    if per_doc is not None and per_doc[0] > 0:
        found["throughput_docs_per_hour"] = _rounded(3600 / per_doc[1], 3600 / per_doc[0], 2)
    found["variance_percent"] = bootstrap_interval(seconds, _cv_percent, digits=2)
    if window >= 2:
        windows = [list(seconds[:window]), list(seconds[-window:])]
        found["degradation_percent"] = bootstrap_interval_of(windows, _slowdown_percent, digits=2)
    return {interval_key(name): value for name, value in found.items() if value is not None}


def interval_of(metrics: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The `[low, high]` stored for `metric`, or None when absent or malformed."""
    raw = metrics.get(interval_key(metric))
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    low, high = raw
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in raw):
        return None
    return (float(min(low, high)), float(max(low, high)))


def favourable_end(interval: tuple[float, float], higher_is_better: bool) -> float:
    """The end of the interval closest to passing: its top for a minimum, its bottom for a maximum."""
    return interval[1] if higher_is_better else interval[0]


def past(value: float, limit: float, higher_is_better: bool) -> bool:
    return value < limit if higher_is_better else value > limit


def beyond(metrics: Mapping[str, Any], metric: str, limit: float, *, higher_is_better: bool) -> bool:
    """Whether `metric` misses `limit` for certain: its whole interval is past it (its value, when it has none)."""
    value = metrics.get(metric)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    interval = interval_of(metrics, metric)
    if interval is None:
        return past(float(value), limit, higher_is_better)
    return past(favourable_end(interval, higher_is_better), limit, higher_is_better)


def within_noise(metrics: Mapping[str, Any], metric: str, limit: float, *, higher_is_better: bool) -> bool:
    """The value misses `limit` but its interval still reaches it: not a failure, and said so in the report."""
    value = metrics.get(metric)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return past(float(value), limit, higher_is_better) and not beyond(
        metrics, metric, limit, higher_is_better=higher_is_better
    )


def describe(metrics: Mapping[str, Any], metric: str) -> str:
    """' (95% CI low-high)' for a metric with an interval, else ''."""
    interval = interval_of(metrics, metric)
    if interval is None:
        return ""
    return f" ({CONFIDENCE:.0%} CI {interval[0]:.4g}-{interval[1]:.4g})"


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
