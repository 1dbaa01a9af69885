"""`kubeinfer bench diff OLD NEW`: per-cell, per-metric changes between two reports; exit 1 on a regression."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kubeinfer.bench.diff import (
    DEFAULT_THRESHOLD_PERCENT,
    ClusterSource,
    DiffInputError,
    ReportDiff,
    as_report,
    diff_reports,
    parse_source,
    read_report_file,
)
from kubeinfer.bench.report import ReportData, atomic_write_text
from kubeinfer.bench.report.diff_html import ordered, render_diff_html, row
from kubeinfer.cli.common import fail, missing_extra
from kubeinfer.cli.output import Output, OutputOpt, emit

#: Exit codes: 0 no regression, 1 a regression, 2 the comparison could not be made.
REGRESSION, BAD_INPUT = 1, 2
HIDDEN = ("unchanged", "within threshold")
VERDICT_STYLE = {
    "regression": "bold red",
    "worse (not gated)": "yellow",
    "better": "green",
    "within noise": "cyan",
    "too few samples": "cyan",
}


def _cluster_report(source: ClusterSource, kubeconfig: Path | None, context: str | None) -> dict[str, Any]:
    try:
        from kubeinfer.cluster.matrices import fetch_report
        from kubeinfer.kube.errors import ClusterError, NoConfiguration
    except ModuleNotFoundError as exc:
        if not missing_extra(exc):
            raise
        fail(
            escape(f"{source}: install kubeinfer[operator] to read cluster reports ({exc.name} is missing)"), BAD_INPUT
        )
    try:
        return fetch_report(source.name, source.namespace, kubeconfig, context).report
    except NoConfiguration as exc:
        hint = "; pass --kubeconfig or set KUBECONFIG" if kubeconfig is None else ""
        fail(escape(f"{source}: {exc}{hint}"), BAD_INPUT)
    except ClusterError as exc:
        fail(escape(f"{source}: {exc}"), BAD_INPUT)


def load_side(text: str, kubeconfig: Path | None, context: str | None) -> tuple[str, ReportData]:
    """The report named on the command line and a label for it; exits 2 with the reason when unusable."""
    try:
        source = parse_source(text)
        if isinstance(source, ClusterSource):
            label, document = str(source), _cluster_report(source, kubeconfig, context)
        else:
            label, document = read_report_file(source)
        return label, as_report(label, document)
    except DiffInputError as exc:
        fail(escape(str(exc)), BAD_INPUT)


def diff_table(diff: ReportDiff, show_all: bool) -> Table:
    """The changes as a table, regressions first; unchanged and within-threshold rows only with -o wide."""
    table = Table(title=f"bench diff (threshold {diff.threshold_percent:g}%)")
    for column in ("cell", "profile", "metric", "old", "new", "change"):
        table.add_column(column, justify="right" if column in ("old", "new", "change") else "left", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for change in ordered(diff):
        if show_all or change.verdict not in HIDDEN:
            cells = row(change)
            verdict = Text(cells["verdict"], style=VERDICT_STYLE.get(cells["verdict"], ""))
            table.add_row(*(Text(cells[key]) for key in ("cell", "profile", "metric", "old", "new", "change")), verdict)
    return table


def _human(result: ReportDiff, html: Path | None) -> Callable[[bool], RenderableType]:
    def view(wide: bool) -> RenderableType:
        lines: list[RenderableType] = [diff_table(result, wide)]
        lines += [f"added cell: {escape(key)}" for key in result.added]
        lines += [f"removed cell: {escape(key)}" for key in result.removed]
        lines += [Text(f"regression: {c.cell} {c.where}", style="bold red") for c in result.regressions]
        lines += [Text(f"not judged: {c.cell} {c.where}: {c.note}", style="cyan") for c in result.changes if c.note]
        lines.append(result.summary())
        if html is not None:
            lines.append(f"html diff: {escape(str(html))}")
        return Group(*lines)

    return view


def diff(
    old: str = typer.Argument(
        ..., help="Old report: report.json, a run folder holding one, or cluster:NAMESPACE/NAME."
    ),
    new: str = typer.Argument(..., help="New report, in the same forms as OLD."),
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD_PERCENT, "--threshold", min=0, help="Percent a metric may get worse before it counts."
    ),
    output: OutputOpt = Output.table,
    as_json: bool = typer.Option(False, "--json", help="Same as -o json."),
    html: Path | None = typer.Option(None, "--html", help="Also write the comparison as an HTML page here."),
    kubeconfig: Path | None = typer.Option(None, help="For cluster: reports. Default: $KUBECONFIG, ~/.kube/config."),
    context: str | None = typer.Option(None, help="For cluster: reports. Kubeconfig context (default: the current)."),
) -> None:
    """Compare two benchmark reports; exit 1 when a change beyond the threshold makes a cell worse.

    Changes inside the noise (overlapping 95% intervals of repeated measurements) never count, nor do those
    of a percentile with too few samples to bound its interval (a p95 needs 72 a side). -o wide lists
    unchanged metrics too; -o name prints the cells with a regression. Exit 0: no regression; 1: a
    regression; 2: an input could not be read.
    """
    old_label, old_report = load_side(old, kubeconfig, context)
    new_label, new_report = load_side(new, kubeconfig, context)
    result = diff_reports(old_report, new_report, threshold, old_label, new_label)
    if html is not None:
        try:
            atomic_write_text(html, render_diff_html(result))
        except OSError as exc:
            fail(escape(f"cannot write the HTML diff to {html}: {exc}"), BAD_INPUT)
    chosen = Output.json if as_json else output
    emit(chosen, result.to_json(), names=result.regressed_cells, table=_human(result, html))
    if result.regressions:
        raise typer.Exit(REGRESSION)
