"""Compare two benchmark reports cell by cell and metric by metric, and say which changes are regressions.

A change is judged in four steps: equal values are *unchanged*; a change no larger than the threshold (in
percent of the old value) is *within threshold*; a larger one is *within noise* when both sides carry a
95% interval (`<metric>_interval`) and the intervals overlap, or when one side has an interval that holds
the other's value; otherwise it is *better* or *worse* by the metric's direction. Directions come from the
ratings' checks where a metric has one, else from the table below.

A percentile's interval has an open end where its level had too few values to bound it (a p95 of fewer
than 72 requests, intervals.minimum_samples). A change past the threshold that the intervals cover is then
*too few samples* rather than *within noise*, with a note saying how many values that percentile needs;
like within noise, never a regression.

A *regression* is a worse change of a gated metric, or a cell whose status got worse (passed > partial >
failed, error, skipped). Not gated: figures measured once that say more about the host at that moment than
about the configuration (load times, temperature, jitter, slowdown, memory drift); they are shown but
never fail a comparison. Ratings are shown too, never gating: a grade moves between neighbours on noise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from kubeinfer.bench.intervals import SUFFIX, interval_of, is_open, minimum_samples, overlap
from kubeinfer.bench.ratings import CHECKS, RATING_RANK
from kubeinfer.bench.report.json_report import ReportData, as_report_data
from kubeinfer.resources.benchmark_matrix import CellResult, Profiles, Slo

DEFAULT_THRESHOLD_PERCENT = 10.0
REPORT_FILE = "report.json"
CLUSTER_PREFIX = "cluster:"

Verdict = Literal[
    "unchanged", "within threshold", "within noise", "too few samples", "better", "worse", "added", "removed"
]

#: Directions (True: higher is better) of the metrics no rating check covers.
EXTRA_DIRECTIONS: dict[str, bool] = {
    "tokens_per_second": True,
    "server_tokens_per_second": True,
    "output_tokens_per_second": True,
    "input_tokens_per_second": True,
    "achieved_rps": True,
    "goodput_rps": True,
    "throughput_docs_per_hour": True,
    "overall_score": True,
    "ttft_seconds": False,
    "server_ttft_seconds": False,
    "seconds_per_document": False,
    "peak_rss_bytes": False,
    "max_sustainable_rps": True,
    "max_sustainable_output_tokens_per_second": True,
    "max_sustainable_input_tokens_per_second": True,
    "cost_per_million_output_tokens": False,
    "cost_per_million_input_tokens": False,
    "peak_memory_gb": False,
    "load_seconds": False,
    "cold_load_seconds": False,
}

#: Latency percentiles (ttft_p95_seconds, itl_p50_seconds, queue_wait_p95_seconds, ...): lower is better.
PERCENTILE = re.compile(r"_p(\d+)(_\d+)?_seconds$")

#: Measured once and dominated by the host's state at that moment: shown, never a regression.
NOT_GATED = frozenset(
    {
        "load_seconds",
        "cold_load_seconds",
        "initial_load_seconds",
        "max_temperature_celsius",
        "variance_percent",
        "degradation_percent",
        "memory_drift_percent",
    }
)

#: Cell-level figures compared alongside the profiles' metrics.
CELL_METRICS = (
    "max_sustainable_rps",
    "max_sustainable_output_tokens_per_second",
    "max_sustainable_input_tokens_per_second",
    "cost_per_million_output_tokens",
    "cost_per_million_input_tokens",
    "peak_memory_gb",
    "load_seconds",
    "cold_load_seconds",
)

#: Better cell statuses rank higher; a drop in rank is a regression.
STATUS_RANK = {"passed": 3, "partial": 2, "failed": 1, "error": 1, "skipped": 1, "running": 0, "pending": 0}


class DiffInputError(ValueError):
    """An input that is not a readable kubeinfer report; the message names it and says why."""


def _rated_directions() -> dict[str, bool]:
    """metric -> higher is better, from every profile's rating checks (with an SLO, so its metrics count)."""
    slo = Slo(ttft_seconds=1, itl_seconds=1, e2e_seconds=1)
    profiles = Profiles.model_validate({"interactive": {"slo": slo}, "batch": {"slo": slo}})
    return {check.metric: check.higher_is_better for build in CHECKS.values() for check in build(profiles, {})}


DIRECTIONS: dict[str, bool] = EXTRA_DIRECTIONS | _rated_directions()


def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is, None when the metric has no direction (not compared)."""
    if metric in DIRECTIONS:
        return DIRECTIONS[metric]
    if PERCENTILE.search(metric):
        return False
    return None


# --- Reading the two sides ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterSource:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{CLUSTER_PREFIX}{self.namespace}/{self.name}"


def parse_source(text: str) -> Path | ClusterSource:
    """A report path (file or run directory), or `cluster:NAMESPACE/NAME` for a finished BenchmarkMatrix."""
    if not text.startswith(CLUSTER_PREFIX):
        return Path(text)
    namespace, slash, name = text.removeprefix(CLUSTER_PREFIX).partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise DiffInputError(f"'{text}': a cluster report is named cluster:NAMESPACE/NAME")
    return ClusterSource(namespace, name)


def read_report_file(path: Path) -> tuple[str, dict[str, Any]]:
    """The report document at `path` (a report.json, or a run directory holding one) and where it was read."""
    file = path / REPORT_FILE if path.is_dir() else path
    if not file.exists():
        where = f"{path} holds no {REPORT_FILE}" if path.is_dir() else f"{path} does not exist"
        raise DiffInputError(where)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffInputError(f"{file}: cannot read it ({exc})") from exc
    except ValueError as exc:
        raise DiffInputError(f"{file}: not JSON ({exc})") from exc
    return str(file), document


def as_report(label: str, document: Any) -> ReportData:
    """The document validated as a kubeinfer report; DiffInputError naming `label` and the field otherwise."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise DiffInputError(f"{label}: not a kubeinfer report (no results list)")
    try:
        return as_report_data(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DiffInputError(f"{label}: not a kubeinfer report ({exc.title} {where}: {first['msg']})") from exc
    except (TypeError, ValueError) as exc:
        raise DiffInputError(f"{label}: not a kubeinfer report ({exc})") from exc


# --- Comparing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One metric (or status, or rating) of one cell, old against new."""

    cell: str
    profile: str | None
    metric: str
    old: Any
    new: Any
    verdict: Verdict
    higher_is_better: bool | None = None
    gated: bool = False
    change_percent: float | None = None
    old_interval: tuple[float, float] | None = None
    new_interval: tuple[float, float] | None = None
    #: Why a change is not judged (too few samples), else None.
    note: str | None = None

    @property
    def regression(self) -> bool:
        return self.verdict == "worse" and self.gated

    @property
    def where(self) -> str:
        return f"{self.profile}.{self.metric}" if self.profile else self.metric

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "profile": self.profile,
            "metric": self.metric,
            "old": self.old,
            "new": self.new,
            "old_interval": _json_interval(self.old_interval),
            "new_interval": _json_interval(self.new_interval),
            "change_percent": _json_number(self.change_percent),
            "higher_is_better": self.higher_is_better,
            "gated": self.gated,
            "verdict": self.verdict,
            "regression": self.regression,
            "note": self.note,
        }


def _json_interval(interval: tuple[float, float] | None) -> list[float | None] | None:
    """`[low, high]` with an open end as null, the way reports store it."""
    return None if interval is None else [end if math.isfinite(end) else None for end in interval]


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return None if value is None else round(value, 2)
    return "inf" if value > 0 else "-inf"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def percent_change(old: float, new: float) -> float:
    if old == new:
        return 0.0
    if old == 0:
        return math.copysign(math.inf, new)
    return (new - old) / abs(old) * 100


def in_noise(
    old: float, new: float, old_interval: tuple[float, float] | None, new_interval: tuple[float, float] | None
) -> bool:
    """Both intervals overlap, or the one side's interval holds the other side's value."""
    if old_interval and new_interval:
        return overlap(old_interval, new_interval)
    if old_interval:
        return old_interval[0] <= new <= old_interval[1]
    if new_interval:
        return new_interval[0] <= old <= new_interval[1]
    return False


def sample_note(metric: str) -> str:
    """Why a change with an open interval is not judged; for a percentile, how many values bound it."""
    found = PERCENTILE.search(metric)
    pct = float(found.group(1) + (found.group(2) or "").replace("_", ".")) if found else 0.0
    if not 0 < pct < 100:
        return "too few samples to bound its 95% interval"
    return f"too few samples: a 95% interval of a p{pct:g} needs at least {minimum_samples(pct)} values a side"


def compare_metric(
    cell: str,
    profile: str | None,
    metric: str,
    old_metrics: dict[str, Any],
    new_metrics: dict[str, Any],
    threshold: float,
) -> Change | None:
    """The change of one directed numeric metric; None when it has no direction or either side lacks it."""
    higher = direction(metric)
    old, new = _number(old_metrics.get(metric)), _number(new_metrics.get(metric))
    if higher is None or old is None or new is None:
        return None
    old_interval, new_interval = interval_of(old_metrics, metric), interval_of(new_metrics, metric)
    change = percent_change(old, new)
    verdict: Verdict
    if change == 0:
        verdict = "unchanged"
    elif abs(change) <= threshold:
        verdict = "within threshold"
    elif in_noise(old, new, old_interval, new_interval):
        verdict = "too few samples" if is_open(old_interval) or is_open(new_interval) else "within noise"
    else:
        verdict = "better" if (new > old) == higher else "worse"
    return Change(
        cell,
        profile,
        metric,
        old,
        new,
        verdict,
        higher_is_better=higher,
        gated=metric not in NOT_GATED,
        change_percent=change,
        old_interval=old_interval,
        new_interval=new_interval,
        note=sample_note(metric) if verdict == "too few samples" else None,
    )


def _ranked(
    cell: str, profile: str | None, metric: str, old: str | None, new: str | None, ranks: dict[str, int], gated: bool
) -> Change | None:
    if old == new or old is None or new is None:
        return None
    before, after = ranks.get(old, 0), ranks.get(new, 0)
    verdict: Verdict = "unchanged" if before == after else ("better" if after > before else "worse")
    return Change(cell, profile, metric, old, new, verdict, higher_is_better=True, gated=gated)


def compare_cells(old: CellResult, new: CellResult, threshold: float) -> list[Change]:
    """Status, then cell figures, then each profile's status, rating and metrics (in the old report's order).

    Only the cell's status gates: a profile that failed or errored already makes the cell partial or failed.
    """
    key = old.key
    changes: list[Change | None] = [
        _ranked(key, None, "status", old.status.value, new.status.value, STATUS_RANK, gated=True)
    ]
    old_fields, new_fields = old.model_dump(), new.model_dump()
    changes += [compare_metric(key, None, name, old_fields, new_fields, threshold) for name in CELL_METRICS]
    for name, before in old.profiles.items():
        after = new.profiles.get(name)
        if after is None:
            continue
        changes.append(_ranked(key, name, "status", before.status, after.status, STATUS_RANK, gated=False))
        changes.append(_ranked(key, name, "rating", before.rating, after.rating, RATING_RANK, gated=False))
        for metric in before.metrics:
            if not metric.endswith(SUFFIX):
                changes.append(compare_metric(key, name, metric, before.metrics, after.metrics, threshold))
    return [change for change in changes if change is not None]


@dataclass
class ReportDiff:
    old: str
    new: str
    threshold_percent: float
    changes: list[Change] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [change for change in self.changes if change.regression]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for change in self.changes if change.verdict == verdict)

    @property
    def regressed_cells(self) -> list[str]:
        return list(dict.fromkeys(change.cell for change in self.regressions))

    def summary(self) -> str:
        parts = [
            f"{len(self.regressions)} regression{'s' if len(self.regressions) != 1 else ''}",
            f"{self.count('better')} better",
            f"{self.count('within noise')} within noise",
        ]
        if few := self.count("too few samples"):
            parts.append(f"{few} with too few samples to judge")
        if ungated := sum(1 for change in self.changes if change.verdict == "worse" and not change.gated):
            parts.append(f"{ungated} worse but not gated")
        if self.added:
            parts.append(f"{len(self.added)} cell(s) added")
        if self.removed:
            parts.append(f"{len(self.removed)} cell(s) removed")
        return ", ".join(parts) + f" (threshold {self.threshold_percent:g}%)"

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "threshold_percent": self.threshold_percent,
            "regression": bool(self.regressions),
            "regressions": [change.to_json() for change in self.regressions],
            "regressed_cells": self.regressed_cells,
            "added_cells": self.added,
            "removed_cells": self.removed,
            "changes": [change.to_json() for change in self.changes],
        }


def diff_reports(
    old: ReportData, new: ReportData, threshold: float, old_label: str = "old", new_label: str = "new"
) -> ReportDiff:
    """Every change between two reports; cells matched by model/quantization."""
    if threshold < 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a percentage of at least 0, got {threshold}")
    before = {cell.key: cell for cell in old.cells}
    after = {cell.key: cell for cell in new.cells}
    result = ReportDiff(old_label, new_label, threshold)
    result.removed = [key for key in before if key not in after]
    result.added = [key for key in after if key not in before]
    for key, cell in before.items():
        if key in after:
            result.changes += compare_cells(cell, after[key], threshold)
    return result
