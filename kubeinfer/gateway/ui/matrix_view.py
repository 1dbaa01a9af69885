"""What the matrix page shows of each cell's numbers: the key metrics, latency percentiles, the charts.

The key metrics are the ones a choice between cells turns on (speed, latency, memory, cost); a column
that no cell has a value for is left out, so a matrix without prices shows no cost column. Percentile
metrics (`ttft_p95_seconds` and the like, written by the load profiles) are shown whenever a profile
reports them, whatever their latency's name. The charts are the HTML report's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeinfer.bench.recommend import cell_rating
from kubeinfer.bench.report.html_report import charts, format_value
from kubeinfer.resources.benchmark_matrix import CellResult

#: `<latency>_p<percentile>_seconds`, as kubeinfer.bench.ratings.percentile_metric names them.
PERCENTILE = re.compile(r"^(?P<latency>[a-z0-9_]+?)_p(?P<pct>\d+(?:_\d+)?)_seconds$")


def _metric(profile: str, name: str) -> Callable[[CellResult], Any]:
    def get(cell: CellResult) -> Any:
        result = cell.profiles.get(profile)
        return result.metrics.get(name) if result else None

    return get


def _cost(cell: CellResult) -> str | None:
    if cell.cost_per_million_output_tokens is None:
        return None
    return f"{cell.cost_per_million_output_tokens:,.4g} {cell.currency or ''}".strip()


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    get: Callable[[CellResult], Any]
    #: the metric name whose suffix gives the unit (kubeinfer.bench.report.html_report.format_value)
    unit_of: str = ""


KEY_COLUMNS = (
    Column("tokens_per_second", "tokens/s", _metric("interactive", "tokens_per_second"), "tokens_per_second"),
    Column("ttft_seconds", "TTFT (mean)", _metric("interactive", "ttft_seconds"), "_seconds"),
    Column("ttft_p95_seconds", "TTFT p95", _metric("interactive", "ttft_p95_seconds"), "_seconds"),
    Column("itl_p95_seconds", "ITL p95", _metric("interactive", "itl_p95_seconds"), "_seconds"),
    Column("e2e_p95_seconds", "end-to-end p95", _metric("interactive", "e2e_p95_seconds"), "_seconds"),
    Column("peak_memory_gb", "peak memory", lambda c: c.peak_memory_gb, "_gb"),
    Column("load_seconds", "load time", lambda c: c.load_seconds, "_seconds"),
    Column("max_sustainable_rps", "sustainable req/s", lambda c: c.max_sustainable_rps),
    Column(
        "max_sustainable_output_tokens_per_second",
        "output tokens/s at that rate",
        lambda c: c.max_sustainable_output_tokens_per_second,
        "tokens_per_second",
    ),
    Column("cost_per_million_output_tokens", "cost / 1M output tokens", _cost),
    Column("quality_score", "quality", _metric("quality", "overall_score"), "_score"),
    Column("docs_per_hour", "batch docs/h", _metric("batch", "throughput_docs_per_hour"), "docs_per_hour"),
)


def key_metrics(cells: list[CellResult]) -> dict[str, Any]:
    """The columns some cell has a value for, and each cell's formatted values under them."""
    columns = [c for c in KEY_COLUMNS if any(c.get(cell) is not None for cell in cells)]
    rows = [
        {
            "cell": cell,
            "rating": cell_rating(cell),
            "values": {c.key: format_value(c.unit_of, c.get(cell)) for c in columns},
        }
        for cell in cells
    ]
    return {"columns": columns, "rows": rows}


def percentiles(cells: list[CellResult]) -> dict[str, Any]:
    """Every `<latency>_p<N>_seconds` metric of every profile: one row per (cell, profile) that has any."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        for profile, result in cell.profiles.items():
            for name, value in result.metrics.items():
                match = PERCENTILE.match(name)
                if match and isinstance(value, int | float) and not isinstance(value, bool):
                    found.setdefault((cell.key, profile), {})[name] = value
    names = {name for values in found.values() for name in values}
    keyed = sorted(names, key=_percentile_order)
    headers = [_percentile_label(name) for name in keyed]
    rows = [
        {"cell": key, "profile": profile, "values": [format_value(name, values.get(name)) for name in keyed]}
        for (key, profile), values in found.items()
    ]
    return {"names": keyed, "headers": headers, "rows": rows}


def _percentile_order(name: str) -> tuple[str, float]:
    match = PERCENTILE.match(name)
    assert match is not None
    return match["latency"], float(match["pct"].replace("_", "."))


def _percentile_label(name: str) -> str:
    latency, pct = _percentile_order(name)
    return f"{latency.replace('_', ' ')} p{pct:g}"


def matrix_view(cells: list[CellResult]) -> dict[str, Any]:
    return {"metrics": key_metrics(cells), "percentiles": percentiles(cells), "charts": charts(cells)}
