"""The report document (seed 002's JSON: metadata, results, recommendations) and its JSON rendering."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from kubeinfer import __version__
from kubeinfer.bench.recommend import best_cell, recommend
from kubeinfer.resources.benchmark_matrix import CellResult


@dataclass
class ReportData:
    """What every report format renders: the run's metadata, its cells and the recommendations.

    `extra` keeps any other top-level keys of the input (such as `best`) so the JSON round-trips them.
    """

    metadata: dict[str, Any]
    cells: list[CellResult]
    recommendations: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _as_mapping(report: object) -> Mapping[str, Any]:
    if isinstance(report, Mapping):
        return report
    if isinstance(report, BaseModel):
        return report.model_dump(mode="python", by_alias=False)
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    raise TypeError(f"cannot build a report from {type(report).__name__}; pass a dict, dataclass or pydantic model")


def _as_cell(item: object) -> CellResult:
    return item if isinstance(item, CellResult) else CellResult.model_validate(item)


def as_report_data(report: object) -> ReportData:
    """Accept the report as a dict in the JSON's shape, or an object with the same fields.

    Cells may be given as `results` or `cells`, as CellResult objects or their dicts; recommendations
    missing from the input are computed from the cells.
    """
    if isinstance(report, ReportData):
        return report
    data = dict(_as_mapping(report))
    results, cells_field = data.pop("results", None), data.pop("cells", None)
    cells = [_as_cell(item) for item in results or cells_field or []]
    metadata = dict(data.pop("metadata", None) or {})
    metadata.setdefault("timestamp", datetime.now(UTC).isoformat())
    metadata.setdefault("kubeinfer_version", __version__)
    recommendations = data.pop("recommendations", None) or recommend(cells)
    data.setdefault("best", best_cell(cells))
    return ReportData(metadata, cells, dict(recommendations), data)


def report_document(data: ReportData) -> dict[str, Any]:
    """The JSON report as a dict; cells in snake_case as `CellResult.model_dump(by_alias=False)` gives."""
    return {
        "metadata": data.metadata,
        "results": [cell.model_dump(mode="json", by_alias=False) for cell in data.cells],
        "recommendations": data.recommendations,
        **data.extra,
    }


def render_json(data: ReportData) -> str:
    return json.dumps(report_document(data), indent=2, ensure_ascii=False, default=str) + "\n"
