"""95% confidence intervals for repeated measurements, and threshold tests that respect them.

A threshold judged on one short run flips on a busy machine (the quickstart's 20% inter-token variance
limit tripped on 1 of 4 identical runs at 23.2%). A profile that repeats a measurement therefore stores,
next to each judged metric `m`, the interval `m_interval = [low, high]`, and a threshold fails only when
the *whole* interval lies past it.

Three methods, chosen by what the metric is:

* a **mean over repeats** (interactive tokens/s, TTFT and jitter over its runs; seconds per batch document)
  gets Student's t interval, mean ± t(0.975, n-1) · s/√n: exact for normally distributed repeats and the
  usual choice for a handful of them, where a bootstrap has too few values to resample;
* a **percentile** (TTFT, end-to-end latency and queue wait p50-p99) gets the distribution-free interval
  between the order statistics whose ranks bound it (exact binomial ranks): no resampling. Where n is too
  small for a rank to exist (the top of a p95 of fewer than 72 values) that end is open, stored as null:
  the data cannot bound it, and a comparison or threshold then never reads past it as certain;
* **any other statistic** of a sample (the batch's coefficient of variation, its first-vs-last slowdown, an
  open-loop load level's requests/s and tokens/s) gets a percentile bootstrap with a fixed seed, so the same
  measurements always give the same report. A closed-loop level's rates are a ratio of means and get Student's
  t over the requests' linearized values (load/rates.py says why each).

Inter-token latency percentiles pool every gap of every request, and a request's gaps move together (one
slot, one moment of the host), so they get the wider of the order-statistic interval over the gaps and a
bootstrap of whole requests (`clustered_quantile_intervals`).

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


def _percentile_bounds(
    estimates: Sequence[float | None], digits: int, tail: float = (1 - CONFIDENCE) / 2
) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of the bootstrap estimates (or those `tail` from each end); None when
    most of them are undefined."""
    found = sorted(e for e in estimates if e is not None)
    if len(found) < len(estimates) // 2:
        return None
    low = found[int(tail * (len(found) - 1))]
    high = found[math.ceil((1 - tail) * (len(found) - 1))]
    return _rounded(low, high, digits)


#: `[low, high]` where an end the data cannot bound (too few values for that percentile) is None (JSON null).
Bounds = list[float | None]


def _binomial_tails(n: int, q: float) -> tuple[list[float], list[float]]:
    """P(B <= k) and P(B >= k) for k = 0..n, B ~ binomial(n, q): each tail summed from its own end, so a
    tail probability near 2.5% keeps its precision next to one near 1."""
    log_q, log_rest = math.log(q), math.log1p(-q)
    log_pmf = [n * log_rest]
    for k in range(1, n + 1):
        log_pmf.append(log_pmf[-1] + math.log((n - k + 1) / k) + log_q - log_rest)
    pmf = [math.exp(value) for value in log_pmf]
    below, above = [0.0] * (n + 1), [0.0] * (n + 2)
    running = 0.0
    for k in range(n + 1):
        running += pmf[k]
        below[k] = running
    for k in range(n, -1, -1):
        above[k] = above[k + 1] + pmf[k]
    return below, above[: n + 1]


def quantile_ranks(n: int, pct: float) -> tuple[int | None, int | None]:
    """1-based ranks of the order statistics bounding the `pct` percentile of n values with 95% confidence,
    each end missing it at most 2.5% of the time; None where no rank does (too few values).

    B, the number of values below the true percentile, is binomial(n, q). The k-th smallest value lies above
    it when B < k, so the lower rank is the largest k with P(B <= k-1) <= 2.5%; it lies below it when B >= k,
    so the upper rank is the smallest k with P(B >= k) <= 2.5%. Even the largest value sits below the true
    percentile with probability q^n: past 2.5% (a p95 of fewer than 72 values) nothing bounds it above.
    """
    if not 0 < pct < 100:
        raise ValueError(f"a percentile interval needs 0 < pct < 100, got {pct}")
    tail = (1 - CONFIDENCE) / 2
    below, above = _binomial_tails(n, pct / 100)
    lower = max((k for k in range(1, n + 1) if below[k - 1] <= tail), default=None)
    upper = min((k for k in range(1, n + 1) if above[k] <= tail), default=None)
    return lower, upper


def minimum_samples(pct: float) -> int:
    """The fewest values whose order statistics bound the `pct` percentile at both ends (95%, equal tails):
    6 for p50, 36 for p90, 72 for p95, 368 for p99."""
    q, tail = pct / 100, (1 - CONFIDENCE) / 2
    return max(math.ceil(math.log(tail) / math.log(share)) for share in (q, 1 - q))


def quantile_interval(values: Sequence[float], pct: float, digits: int = 5) -> Bounds | None:
    """Distribution-free 95% interval of the `pct` percentile: the order statistics whose ranks bound it
    (`quantile_ranks`), widened to hold the interpolated point estimate.

    With 8 values a median's interval is their whole range, and a p95's or p99's top is open (None): no
    value of 8 is above the true p95 with 97.5% confidence. None for fewer than two values.
    """
    ordered = sorted(_finite(values))
    n = len(ordered)
    if n < 2:
        return None
    lower, upper = quantile_ranks(n, pct)
    rank = (n - 1) * pct / 100
    low = None if lower is None else ordered[min(lower - 1, math.floor(rank))]
    high = None if upper is None else ordered[max(upper - 1, math.ceil(rank))]
    return [None if low is None else round(low, digits), None if high is None else round(high, digits)]


def clustered_quantile_intervals(
    groups: Sequence[Sequence[float]], percentiles: Sequence[float], digits: int = 5
) -> dict[float, Bounds]:
    """95% intervals of percentiles of the pooled values of `groups` (a request's inter-token gaps).

    The order-statistic interval treats every value as independent, but a group's values move together, so
    it is joined with a percentile bootstrap that resamples whole groups (the spread between requests; one
    pooled sort per resample serves every percentile). No interval for fewer than two values in all.
    """
    cleaned = [values for group in groups if (values := _finite(group))]
    pooled = [value for group in cleaned for value in group]
    between_groups = _group_bootstrap(cleaned, percentiles, digits) if len(cleaned) >= 2 else {}
    found: dict[float, Bounds] = {}
    for pct in percentiles:
        order_statistics = quantile_interval(pooled, pct, digits)
        if order_statistics is not None:
            found[pct] = _hull(order_statistics, between_groups.get(pct))
    return found


def _hull(first: Bounds, second: Sequence[float] | None) -> Bounds:
    """The smallest interval holding both; an open end stays open."""
    if second is None:
        return first
    low = None if first[0] is None else min(first[0], second[0])
    high = None if first[1] is None else max(first[1], second[1])
    return [low, high]


def _group_bootstrap(
    groups: Sequence[Sequence[float]], percentiles: Sequence[float], digits: int
) -> dict[float, list[float]]:
    rng = random.Random(BOOTSTRAP_SEED)
    estimates: dict[float, list[float | None]] = {pct: [] for pct in percentiles}
    for _ in range(BOOTSTRAP_RESAMPLES):
        ordered = sorted(value for group in rng.choices(groups, k=len(groups)) for value in group)
        for pct in percentiles:
            estimates[pct].append(_interpolated(ordered, pct))
    tail = expanded_tail(len(groups))
    bounds = {pct: _percentile_bounds(found, digits, tail) for pct, found in estimates.items()}
    return {pct: interval for pct, interval in bounds.items() if interval is not None}


def expanded_tail(n: int) -> float:
    """The tail to cut from each end of a bootstrap of n units (Hesterberg's expanded percentile interval).

    A percentile bootstrap of few units is too narrow: it resamples only the spread those units show. Cutting
    the tail where a normal's quantile is √(n/(n-1))·t(0.975, n-1) instead of 1.96 restores Student's width
    (0.57% a side for 8 requests); it tends to 2.5% as n grows.
    """
    z = math.sqrt(n / (n - 1)) * t_critical(n - 1)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _interpolated(ordered: Sequence[float], pct: float) -> float:
    """The `pct` percentile of sorted values, linear between the closest ranks (stats.percentile's rule)."""
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
    """The `[low, high]` stored for `metric`, or None when absent or malformed. An open end (null: too few
    values to bound it) reads as -inf or +inf, so it holds every value on its side."""
    raw = metrics.get(interval_key(metric))
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    if not all(end is None or (_is_number(end) and math.isfinite(end)) for end in raw):
        return None
    low = -math.inf if raw[0] is None else float(raw[0])
    high = math.inf if raw[1] is None else float(raw[1])
    return (min(low, high), max(low, high))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_open(interval: tuple[float, float] | None) -> bool:
    """An interval with an end the data could not bound (too few values for a percentile)."""
    return interval is not None and not all(math.isfinite(end) for end in interval)


def format_end(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else ("∞" if value > 0 else "-∞")


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
    return f" ({CONFIDENCE:.0%} CI {format_end(interval[0])}-{format_end(interval[1])})"


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]
