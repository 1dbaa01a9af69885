"""Write a matrix's results as JSON, CSV and a self-contained HTML report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from kubeinfer.bench.report.csv_report import render_csv
from kubeinfer.bench.report.html_report import render_html
from kubeinfer.bench.report.json_report import ReportData, as_report_data, render_json
from kubeinfer.storage.atomic import atomic_write_text

RENDERERS: dict[str, Callable[[ReportData], str]] = {"json": render_json, "csv": render_csv, "html": render_html}
FORMATS = tuple(RENDERERS)


def write_reports(report: object, out_dir: Path, formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Write `report.<format>` for each format into `out_dir`; returns the paths by format.

    `report` is the JSON document as a dict (metadata, results, recommendations) or an object with
    those fields; see `as_report_data`. Every format is rendered before any file is written, so a
    rendering error leaves the previous reports in place.
    """
    wanted = list(dict.fromkeys(formats))
    unknown = [fmt for fmt in wanted if fmt not in RENDERERS]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    data = as_report_data(report)
    rendered = {fmt: RENDERERS[fmt](data) for fmt in wanted}
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt, text in rendered.items():
        path = out_dir / f"report.{fmt}"
        atomic_write_text(path, text)
        written[fmt] = path
    return written


__all__ = ["FORMATS", "ReportData", "as_report_data", "atomic_write_text", "write_reports"]
