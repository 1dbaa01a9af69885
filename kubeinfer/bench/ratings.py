"""Rate a profile's metrics against the spec's thresholds and translate them into plain words.

The seed's usability rating: *excellent* when every metric beats its threshold by 50% or more, *good* by
20% or more, *acceptable* when every threshold is met, *poor* when a non-critical metric misses and
*failed* when a critical one does. How far a metric "beats" its threshold is measured against the room
the metric's scale leaves (see `Check.scale`), so that a 0-100 score or a temperature can be excellent too.

Noise: a metric measured over repeats carries a 95% interval (`<metric>_interval`, see intervals.py). It
misses a threshold only when the whole interval is past it; a value past the threshold whose interval
still reaches it counts as just meeting it (margin 0, so at best *acceptable*) and the profile's reason
says "within noise".

SLOs: where a load profile (interactive, batch) sets `slo`, its latency percentiles are checked against the
limits and goodput (requests per second meeting every limit) must be above zero; recommend.py then ranks
that use case by goodput.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kubeinfer.bench.intervals import describe, favourable_end, interval_of, past
from kubeinfer.resources.benchmark_matrix import ProfileResult, Profiles, Rating, Slo

EXCELLENT_MARGIN = 0.5
GOOD_MARGIN = 0.2

#: Higher-is-better rank of each rating; recommendations and reports sort by it.
RATING_RANK: dict[str, int] = {"failed": 0, "poor": 1, "acceptable": 2, "good": 3, "excellent": 4}

#: Room a temperature threshold is measured against: a 85 °C limit on a 25 °C room leaves 60 °C of headroom.
AMBIENT_CELSIUS = 25.0

#: The spec has no threshold for sustained-speed drift under stress; the batch profile's 20% default is used.
MAX_STRESS_DRIFT_PERCENT = 20.0

#: Metrics scored in percent (0-100); their headroom is the distance to a perfect 100.
PERCENT_CEILING = 100.0

ABS_DRIFT = "tokens_per_second_drift_percent_abs"

GIB = 1024**3


@dataclass(frozen=True)
class Check:
    """One metric against one threshold.

    `scale` is what "beating the threshold by 100%" means: the threshold itself for ratio quantities
    (tokens/s, seconds, percentages of variance), the distance to 100 for scores, the distance to room
    temperature for Celsius, and None for yes/no facts (met or not, no degrees).
    """

    metric: str
    threshold: float
    higher_is_better: bool
    critical: bool
    scale: float | None
    #: Says what a miss means when "<metric> should be at least <threshold>" would not (goodput above zero).
    miss: str | None = None

    def margin(self, value: float) -> float:
        """Signed fraction by which `value` beats the threshold; negative when it misses it."""
        beat = value - self.threshold if self.higher_is_better else self.threshold - value
        if beat < 0:
            return -1.0 if self.scale is None else beat / max(self.scale, 1e-12)
        if self.scale is None or self.scale <= 0:
            return math.inf
        return round(beat / self.scale, 9)


def at_least(metric: str, threshold: float, *, critical: bool = False, ceiling: float | None = None) -> Check:
    scale = threshold if ceiling is None else ceiling - threshold
    return Check(metric, threshold, higher_is_better=True, critical=critical, scale=scale)


def at_most(metric: str, threshold: float, *, critical: bool = False, floor: float = 0.0) -> Check:
    return Check(metric, threshold, higher_is_better=False, critical=critical, scale=threshold - floor)


def holds(metric: str, threshold: float, *, higher_is_better: bool, critical: bool = False) -> Check:
    """A yes/no check: meeting it never limits the rating, missing it makes it poor (or failed)."""
    return Check(metric, threshold, higher_is_better=higher_is_better, critical=critical, scale=None)


def rating_from_margins(margins: list[tuple[Check, float]]) -> Rating | None:
    """The seed rule applied to each check's margin; None when no metric could be checked."""
    if not margins:
        return None
    if any(check.critical and margin < 0 for check, margin in margins):
        return "failed"
    if any(margin < 0 for _, margin in margins):
        return "poor"
    worst = min(margin for _, margin in margins)
    if worst >= EXCELLENT_MARGIN:
        return "excellent"
    if worst >= GOOD_MARGIN:
        return "good"
    return "acceptable"


def _number(value: Any) -> float | None:
    """Metric values as floats; booleans count as 0/1, anything non-numeric as missing."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def noisy_miss(check: Check, metrics: dict[str, Any]) -> bool:
    """The metric's value misses the threshold but its interval reaches it: not a miss, only noise."""
    value = _number(metrics.get(check.metric))
    interval = interval_of(metrics, check.metric)
    if value is None or interval is None or check.margin(value) >= 0:
        return False
    return not past(favourable_end(interval, check.higher_is_better), check.threshold, check.higher_is_better)


def evaluate(checks: list[Check], metrics: dict[str, Any]) -> list[tuple[Check, float]]:
    """Margins of the checks whose metric was measured; a missing metric is not held against the profile.

    A miss within the metric's interval counts as meeting the threshold exactly (margin 0).
    """
    margins = []
    for check in checks:
        value = _number(metrics.get(check.metric))
        if value is not None:
            margins.append((check, 0.0 if noisy_miss(check, metrics) else check.margin(value)))
    return margins


#: Goodput must be above this to count as any: a profile whose requests never all met the SLO serves none.
GOODPUT_FLOOR = 1e-9
GOODPUT_MISS = "critical goodput_rps is 0: no request met every SLO limit"


def percentile_metric(latency: str, percentile: float) -> str:
    """The profile metric holding a latency's percentile, e.g. ttft at 95 -> ttft_p95_seconds."""
    return f"{latency}_p{percentile:g}_seconds".replace(".", "_")


def slo_checks(slo: Slo | None) -> list[Check]:
    """With an SLO: goodput above zero is critical, each latency limit at the SLO's percentile degrades.

    Goodput already counts only requests meeting every limit, at whichever load level met them; the
    percentiles (as the profile reports them) grade how much room the limits leave, and a miss there makes
    the profile poor rather than failed.
    """
    if slo is None:
        return []
    limits = {"ttft": slo.ttft_seconds, "itl": slo.itl_seconds, "e2e": slo.e2e_seconds}
    goodput = Check("goodput_rps", GOODPUT_FLOOR, True, critical=True, scale=None, miss=GOODPUT_MISS)
    return [
        goodput,
        *(at_most(percentile_metric(latency, slo.percentile), limit) for latency, limit in limits.items() if limit),
    ]


def interactive_checks(profiles: Profiles, _metrics: dict[str, Any]) -> list[Check]:
    """TTFT and speed decide whether the cell is usable at all (rule 3); jitter only degrades it."""
    p = profiles.interactive
    return [
        at_least("tokens_per_second", p.min_tokens_per_second, critical=True),
        at_most("ttft_seconds", p.max_time_to_first_token_seconds, critical=True),
        at_most("variance_percent", p.max_variance_percent),
        *slo_checks(p.slo),
    ]


def _attempted_contexts(profiles: Profiles, metrics: dict[str, Any]) -> list[int]:
    by_context = metrics.get("load_seconds_by_context")
    if isinstance(by_context, dict) and by_context:
        return sorted(int(size) for size in by_context)
    return list(profiles.long_context.context_sizes)


def long_context_checks(profiles: Profiles, metrics: dict[str, Any]) -> list[Check]:
    """The largest attempted context must load in time; reaching it and not swapping are the rest.

    "Attempted" rather than configured: a model whose trained context is 8k is judged on what it can hold.
    """
    attempted = _attempted_contexts(profiles, metrics)
    return [
        at_most("initial_load_seconds", profiles.long_context.max_initial_load_seconds, critical=True),
        holds("max_context_ok", attempted[0], higher_is_better=True, critical=True),
        holds("max_context_ok", attempted[-1], higher_is_better=True),
        holds("swap_used_bytes", 0, higher_is_better=False),
    ]


def batch_checks(profiles: Profiles, _metrics: dict[str, Any]) -> list[Check]:
    """Finishing documents is what makes batch use functional; consistency, degradation and leaks rate it."""
    p = profiles.batch
    return [
        holds("documents", 1, higher_is_better=True, critical=True),
        at_most("variance_percent", p.max_variance_percent),
        at_most("degradation_percent", p.max_degradation_percent),
        at_most("memory_drift_percent", p.max_memory_drift_percent),
        *slo_checks(p.slo),
    ]


def quality_checks(profiles: Profiles, _metrics: dict[str, Any]) -> list[Check]:
    """Math is the critical score: the seed's financial use tolerates no arithmetic slips."""
    p = profiles.quality
    return [
        at_least("math_score", p.min_math_score, critical=True, ceiling=PERCENT_CEILING),
        at_least("comprehension_score", p.min_comprehension_score, ceiling=PERCENT_CEILING),
        at_least("reasoning_score", p.min_reasoning_score, ceiling=PERCENT_CEILING),
        at_least("format_compliance", p.min_format_compliance, ceiling=PERCENT_CEILING),
    ]


def stress_checks(profiles: Profiles, _metrics: dict[str, Any]) -> list[Check]:
    """An aborted run or the abort temperature fails the profile; heat, throttling, swap and drift degrade it.

    Drift is checked by magnitude because a sustained speed that changes by a fifth either way is unstable.
    """
    p = profiles.stress
    return [
        holds("aborted", 0, higher_is_better=False, critical=True),
        holds("max_temperature_celsius", p.abort_temperature_celsius, higher_is_better=False, critical=True),
        at_most("max_temperature_celsius", p.max_temperature_celsius, floor=AMBIENT_CELSIUS),
        holds("throttled", 0, higher_is_better=False),
        holds("swap_used_bytes", 0, higher_is_better=False),
        at_most(ABS_DRIFT, MAX_STRESS_DRIFT_PERCENT),
    ]


CheckBuilder = Callable[[Profiles, dict[str, Any]], list[Check]]

CHECKS: dict[str, CheckBuilder] = {
    "interactive": interactive_checks,
    "long_context": long_context_checks,
    "batch": batch_checks,
    "quality": quality_checks,
    "stress": stress_checks,
}


def _with_derived(profile: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics plus the derived ones a profile's checks read (the stress drift's magnitude)."""
    if profile != "stress":
        return metrics
    drift = _number(metrics.get("tokens_per_second_drift_percent"))
    return {**metrics, ABS_DRIFT: abs(drift) if drift is not None else None}


def failed_checks(profile: str, metrics: dict[str, Any], profiles: Profiles) -> list[Check]:
    """The checks a profile's metrics miss, critical ones first (for reasons and reports)."""
    checks = CHECKS[profile](profiles, metrics)
    missed = [check for check, margin in evaluate(checks, _with_derived(profile, metrics)) if margin < 0]
    return sorted(missed, key=lambda check: not check.critical)


def rate_metrics(profile: str, metrics: dict[str, Any], profiles: Profiles) -> Rating | None:
    """The rating of one profile's metrics; None for an unknown profile or when nothing was measured."""
    builder = CHECKS.get(profile)
    if builder is None:
        return None
    return rating_from_margins(evaluate(builder(profiles, metrics), _with_derived(profile, metrics)))


def describe_miss(check: Check, metrics: dict[str, Any] | None = None) -> str:
    """'critical tokens_per_second should be at least 2', with the measured interval when there is one."""
    if check.miss is not None:
        return check.miss
    relation = "at least" if check.higher_is_better else "at most"
    kind = "critical " if check.critical else ""
    measured = ""
    if metrics is not None and (value := _number(metrics.get(check.metric))) is not None:
        measured = f" (measured {value:g}{describe(metrics, check.metric)})"
    return f"{kind}{check.metric} should be {relation} {check.threshold:g}{measured}"


def noise_notes(profile: str, metrics: dict[str, Any], profiles: Profiles) -> list[str]:
    """One line per threshold whose value misses it while its interval reaches it, for the report."""
    builder = CHECKS.get(profile)
    notes: list[str] = []
    for check in builder(profiles, metrics) if builder else []:
        value = _number(metrics.get(check.metric))
        if value is not None and noisy_miss(check, metrics):
            relation = "at least" if check.higher_is_better else "at most"
            notes.append(
                f"within noise: {check.metric} {value:g}{describe(metrics, check.metric)} "
                f"vs {relation} {check.threshold:g}"
            )
    return notes


def rate_profile(name: str, result: ProfileResult, profiles: Profiles) -> ProfileResult:
    """A copy of `result` with its rating and interpretations.

    skipped and error results get no rating. A failed result is rated from its metrics: *failed* when a
    critical threshold was missed (TTFT, tokens/s, ...), *poor* when only a secondary one was (variance,
    drift), so a jittery but usable configuration stays usable. A passed result whose metrics miss a
    critical threshold is turned into a failed one, so that the status the termination rules read and the
    rating shown in reports never disagree. A passed result with a miss inside the noise keeps its status
    and says so in its reason.
    """
    interpretation = interpret_metrics(result.metrics)
    if result.status in ("skipped", "error"):
        return result.model_copy(update={"rating": None, "interpretation": interpretation})
    if result.status == "failed":
        missed = rate_metrics(name, result.metrics, profiles) == "poor"
        return result.model_copy(update={"rating": "poor" if missed else "failed", "interpretation": interpretation})
    rating = rate_metrics(name, result.metrics, profiles)
    update: dict[str, Any] = {"rating": rating, "interpretation": interpretation}
    if rating == "failed":
        critical = [c for c in failed_checks(name, result.metrics, profiles) if c.critical]
        update |= {"status": "failed", "reason": "; ".join(describe_miss(c, result.metrics) for c in critical)}
    elif result.reason is None and (notes := noise_notes(name, result.metrics, profiles)):
        update["reason"] = "; ".join(notes)
    return result.model_copy(update=update)


# --- Real-world translation table -------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """Values up to `upper` (inclusive or not, per table) read as `text`."""

    upper: float
    label: str
    text: str


@dataclass(frozen=True)
class Translation:
    """One block of the seed's translation table.

    `upper_inclusive` follows the metric's threshold direction so that a value exactly at a pass threshold
    never reads as failing: TTFT 30 s is still "significant wait" (limit <= 30 s), 2 t/s is already
    "slow but readable" (limit >= 2 t/s).
    """

    title: str
    unit: str
    upper_inclusive: bool
    bands: tuple[Band, ...]

    def band(self, value: float) -> Band:
        for band in self.bands:
            if value < band.upper or (self.upper_inclusive and value == band.upper):
                return band
        return self.bands[-1]


INF = math.inf
TABLE = "data/ratings.json"


def _load_translations() -> tuple[dict[str, Translation], dict[str, str]]:
    """The seed's table from kubeinfer/bench/data/ratings.json: translation blocks, and metric -> block.

    Gaps in the seed are closed there: below 2 t/s (not in the seed) and 30-40 t/s (folded into "very
    fast"); the quality block is derived from the seed's quality examples (95%, 70%, "Q2").
    """
    table = json.loads(resources.files("kubeinfer.bench").joinpath(TABLE).read_text(encoding="utf-8"))
    translations = {
        name: Translation(
            block["title"],
            block["unit"],
            bool(block["upperInclusive"]),
            tuple(Band(INF if b["upper"] is None else b["upper"], b["label"], b["text"]) for b in block["bands"]),
        )
        for name, block in table["tables"].items()
    }
    unknown = sorted(set(table["metrics"].values()) - set(translations))
    if unknown:
        raise ValueError(f"{TABLE}: metrics name blocks that do not exist: {', '.join(unknown)}")
    return translations, dict(table["metrics"])


#: The seed's table, one block per scale, and which block each profile metric (and report field) reads.
TRANSLATIONS, METRIC_TRANSLATION = _load_translations()

#: Byte-valued metrics interpreted on the memory scale after conversion to GiB.
BYTE_METRICS = frozenset({"peak_rss_bytes"})


def translation_for(metric: str) -> Translation:
    """The translation block for a table name (`ttft_seconds`) or a profile metric (`server_ttft_seconds`)."""
    if metric in BYTE_METRICS:
        return TRANSLATIONS["memory_gb"]
    name = METRIC_TRANSLATION.get(metric, metric)
    try:
        return TRANSLATIONS[name]
    except KeyError:
        raise ValueError(f"no real-world translation for metric '{metric}'") from None


def interpret(metric: str, value: float) -> str:
    """The seed's plain-words reading of one value, e.g. interpret("tokens_per_second", 18.5)."""
    if metric in BYTE_METRICS:
        value = value / GIB
    return translation_for(metric).band(value).text


def interpretable(metric: str) -> bool:
    return metric in BYTE_METRICS or metric in METRIC_TRANSLATION or metric in TRANSLATIONS


def interpret_metrics(metrics: dict[str, Any]) -> dict[str, str]:
    """Interpretations of every numeric metric the table covers, plus one per long-context size."""
    result = {
        name: interpret(name, number)
        for name, value in metrics.items()
        if interpretable(name) and (number := _number(value)) is not None and not isinstance(value, bool)
    }
    by_context = metrics.get("load_seconds_by_context")
    if isinstance(by_context, dict):
        for size, seconds in by_context.items():
            number = _number(seconds)
            if number is not None:
                result[f"load_seconds_by_context.{size}"] = interpret("context_load_seconds", number)
    return result
