"""The regression diff as one self-contained HTML page (inline CSS), rendered with autoescaping Jinja."""

from __future__ import annotations

import math
from typing import Any

from kubeinfer.bench.diff import Change, ReportDiff
from kubeinfer.bench.intervals import format_end
from kubeinfer.bench.report.html_report import environment

#: Rows in this order: what fails the comparison first, what changed nothing last.
VERDICT_ORDER = ("worse", "better", "within noise", "too few samples", "within threshold", "unchanged")
VERDICT_CLASS = {
    "regression": "regression",
    "worse (not gated)": "worse",
    "better": "better",
    "within noise": "noise",
    "too few samples": "noise",
}


def format_side(value: Any, interval: tuple[float, float] | None) -> str:
    """A value with its 95% interval, e.g. '20.1 [18.2, 22]' ('[4.1, ∞]' where too few values bound the top)."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = "–" if value is None else str(value)
    if interval is not None:
        text += f" [{format_end(interval[0])}, {format_end(interval[1])}]"
    return text


def format_change(change: Change) -> str:
    percent = change.change_percent
    if percent is None:
        return ""
    if not math.isfinite(percent):
        return "from 0"
    return f"{percent:+.1f}%"


def verdict_label(change: Change) -> str:
    if change.regression:
        return "regression"
    if change.verdict == "worse":
        return "worse (not gated)"
    return change.verdict


def ordered(diff: ReportDiff) -> list[Change]:
    """Regressions first, then by verdict (worse, better, noise, threshold, unchanged), report order within."""
    return sorted(
        diff.changes,
        key=lambda c: (not c.regression, VERDICT_ORDER.index(c.verdict) if c.verdict in VERDICT_ORDER else 9),
    )


def row(change: Change) -> dict[str, str]:
    label = verdict_label(change)
    return {
        "cell": change.cell,
        "profile": change.profile or "cell",
        "metric": change.metric,
        "old": format_side(change.old, change.old_interval),
        "new": format_side(change.new, change.new_interval),
        "change": format_change(change),
        "direction": "" if change.higher_is_better is None else ("↑" if change.higher_is_better else "↓"),
        "verdict": label,
        "css": VERDICT_CLASS.get(label, "unchanged"),
        "note": change.note or "",
    }


def render_diff_html(diff: ReportDiff) -> str:
    return (
        environment()
        .get_template("diff.html")
        .render(diff=diff, rows=[row(c) for c in ordered(diff)], summary=diff.summary(), regressed=diff.regressed_cells)
    )
