"""The HTML report: one self-contained page (inline CSS and SVG charts), rendered with autoescaping Jinja."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from kubeinfer.bench.quantization import bits_per_weight
from kubeinfer.bench.ratings import TRANSLATIONS, interpret
from kubeinfer.bench.recommend import USE_CASE_TITLES, cell_rating, memory_gb
from kubeinfer.bench.report.json_report import ReportData
from kubeinfer.bench.report.svg import Point, Series, line_chart
from kubeinfer.resources.benchmark_matrix import PROFILE_NAMES, CellResult, ProfileResult

GIB = 1024**3
TOP_PER_USE_CASE = 3
LOG_TAIL_LINES = 40

#: CSS class of a cell or profile status when there is no rating to colour it by.
STATUS_CLASS = {
    "passed": "r-good",
    "partial": "r-acceptable",
    "failed": "r-failed",
    "skipped": "s-skipped",
    "error": "s-error",
    "pending": "s-pending",
    "running": "s-running",
}

#: Unit shown after a metric's value, by the end of its name.
UNIT_SUFFIXES = (
    ("tokens_per_second", " t/s"),
    ("docs_per_hour", " docs/h"),
    ("_seconds", " s"),
    ("_percent", " %"),
    ("_celsius", " °C"),
    ("_mhz", " MHz"),
    ("_score", " %"),
    ("_compliance", " %"),
    ("_gb", " GB"),
)


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("kubeinfer.bench.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(data: ReportData) -> str:
    return environment().get_template("report.html").render(**html_context(data))


def html_context(data: ReportData) -> dict[str, Any]:
    meta = data.metadata
    return {
        "title": meta.get("name") or "benchmark matrix",
        "meta": meta,
        "hardware": meta.get("hardware") or {},
        "engine": meta.get("engine") or {},
        "duration": format_duration(meta.get("test_duration_seconds")),
        "models": sorted({cell.model for cell in data.cells}),
        "status_counts": sorted(Counter(cell.status.value for cell in data.cells).items()),
        "best": data.recommendations.get("overall_best"),
        "use_cases": use_cases(data.recommendations),
        "grid": cell_grid(data.cells),
        "profiles": profile_columns(data.cells),
        "heatmap": heatmap(data.cells),
        "charts": charts(data.cells),
        "details": [cell_details(index, cell) for index, cell in enumerate(data.cells)],
        "config_json": json.dumps(meta.get("config") or {}, indent=2, default=str),
        "translations": TRANSLATIONS,
        "status_class": STATUS_CLASS,
    }


# --- Formatting ---------------------------------------------------------------------------------------


def format_duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def format_number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def unit_for(name: str) -> str:
    return next((unit for suffix, unit in UNIT_SUFFIXES if name.endswith(suffix)), "")


def format_value(name: str, value: Any) -> str:
    """A metric value for people: units, GiB for bytes, yes/no, a summary for lists and maps."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if name.endswith("_bytes"):
            return f"{value / GIB:.2f} GiB"
        if name.endswith("_seconds") and 0 < abs(value) < 0.1:
            return f"{value * 1000:.1f} ms"  # inter-token gaps and queue waits
        return format_number(value) + unit_for(name)
    if isinstance(value, dict):
        item_name = name.split("_by_")[0]  # load_seconds_by_context holds load_seconds values
        return ", ".join(f"{key}: {format_value(item_name, item)}" for key, item in value.items())
    if isinstance(value, list):
        if all(isinstance(item, str | int | float) for item in value):
            return ", ".join(str(item) for item in value) or "none"
        return f"{len(value)} {name.replace('_', ' ')}"
    return str(value)


# --- Summary, grid and heat map -----------------------------------------------------------------------


def use_cases(recommendations: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "title": title,
            "entries": (recommendations.get(key) or [])[:TOP_PER_USE_CASE],
            "more": max(0, len(recommendations.get(key) or []) - TOP_PER_USE_CASE),
        }
        for key, title in USE_CASE_TITLES.items()
    ]


def quantizations(cells: list[CellResult]) -> list[str]:
    """Quantizations from least to most precise, the order in which quality is expected to rise."""
    return sorted({cell.quantization for cell in cells}, key=lambda q: (bits_per_weight(q), q))


def cell_tooltip(cell: CellResult) -> str:
    parts = [f"{cell.key}: {cell.status.value}"]
    if cell.rule:
        parts.append(f"rule {cell.rule.value}")
    if cell.reason:
        parts.append(cell.reason)
    return " — ".join(parts)


def cell_grid(cells: list[CellResult]) -> dict[str, Any]:
    """Models (rows, smallest first) by quantizations (columns), each coloured by the cell's overall rating."""
    quants = quantizations(cells)
    by_key = {(cell.model, cell.quantization): _grid_cell(index, cell) for index, cell in enumerate(cells)}
    sizes = {cell.model: cell.model_size_b for cell in cells}
    models = sorted(sizes, key=lambda model: (sizes[model], model))
    rows = [{"model": model, "cells": [by_key.get((model, quant)) for quant in quants]} for model in models]
    return {"quants": quants, "rows": rows}


def _grid_cell(index: int, cell: CellResult) -> dict[str, Any]:
    return {
        "anchor": f"cell-{index}",
        "status": cell.status.value,
        "rating": cell_rating(cell),
        "title": cell_tooltip(cell),
    }


def profile_columns(cells: list[CellResult]) -> list[str]:
    present = {name for cell in cells for name in cell.profiles}
    return [name for name in PROFILE_NAMES if name in present]


def profile_tooltip(name: str, result: ProfileResult) -> str:
    if result.reason:
        return f"{name}: {result.reason}"
    return f"{name}: " + "; ".join(f"{metric}: {text}" for metric, text in result.interpretation.items())


def heatmap(cells: list[CellResult]) -> list[dict[str, Any]]:
    columns = profile_columns(cells)
    rows = []
    for index, cell in enumerate(cells):
        entries = []
        for name in columns:
            result = cell.profiles.get(name)
            entries.append(
                None
                if result is None
                else {"status": result.status, "rating": result.rating, "title": profile_tooltip(name, result)}
            )
        rows.append(
            {
                "anchor": f"cell-{index}",
                "key": cell.key,
                "status": cell.status.value,
                "title": cell_tooltip(cell),
                "rating": cell_rating(cell),
                "profiles": entries,
            }
        )
    return rows


# --- Charts -------------------------------------------------------------------------------------------


def _metric(cell: CellResult, profile: str, name: str) -> float | None:
    result = cell.profiles.get(profile)
    value = result.metrics.get(name) if result else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _by_quant(cells: list[CellResult], y_of: Callable[[CellResult], float | None], unit: str) -> list[Series]:
    series = []
    for quant in quantizations(cells):
        points = []
        for cell in cells:
            y = y_of(cell)
            if cell.quantization == quant and cell.model_size_gb is not None and y is not None:
                label = f"{cell.key}: {format_number(y)}{unit} at {cell.model_size_gb:.2f} GB"
                points.append(Point(cell.model_size_gb, y, label))
        series.append(Series(quant, tuple(points)))
    return series


def tokens_chart(cells: list[CellResult]) -> Markup | None:
    series = _by_quant(cells, lambda c: _metric(c, "interactive", "tokens_per_second"), " t/s")
    return line_chart("Tokens/s vs model size", "model file size (GB)", "tokens/s", series)


def memory_chart(cells: list[CellResult]) -> Markup | None:
    series = _by_quant(cells, lambda c: c.peak_memory_gb, " GB")
    return line_chart("Memory vs model size", "model file size (GB)", "peak memory (GB)", series)


def quality_chart(cells: list[CellResult]) -> Markup | None:
    quants = quantizations(cells)
    series = []
    for model in sorted({cell.model for cell in cells}):
        points = []
        for cell in cells:
            score = _metric(cell, "quality", "overall_score")
            if cell.model == model and score is not None:
                points.append(Point(quants.index(cell.quantization), score, f"{cell.key}: {score:.0f}%"))
        series.append(Series(model, tuple(points)))
    return line_chart("Quality vs quantization", "quantization", "overall score (%)", series, x_categories=quants)


def context_chart(cells: list[CellResult]) -> Markup | None:
    series = []
    for cell in cells:
        result = cell.profiles.get("long_context")
        by_context = result.metrics.get("load_seconds_by_context") if result else None
        if not isinstance(by_context, dict):
            continue
        points = tuple(
            Point(
                float(size),
                float(seconds),
                f"{cell.key}: {size} tokens in {seconds:.1f}s — " + interpret("context_load_seconds", float(seconds)),
            )
            for size, seconds in by_context.items()
            if isinstance(seconds, int | float)
        )
        series.append(Series(cell.key, points))
    return line_chart("Context size vs load time", "context (tokens)", "load time (s)", series)


def temperature_chart(cells: list[CellResult]) -> Markup | None:
    series = []
    for cell in cells:
        result = cell.profiles.get("stress")
        samples = result.metrics.get("samples") if result else None
        if not isinstance(samples, list):
            continue
        points = tuple(
            Point(
                float(s["t"]) / 60,
                float(s["temperature_celsius"]),
                f"{float(s['t']) / 60:.1f} min: {s['temperature_celsius']:.0f}°C — "
                + interpret("temperature_celsius", float(s["temperature_celsius"])),
            )
            for s in samples
            if isinstance(s, dict)
            and isinstance(s.get("t"), int | float)
            and isinstance(s.get("temperature_celsius"), int | float)
        )
        series.append(Series(cell.key, points))
    return line_chart("Temperature over time (stress)", "time (minutes)", "temperature (°C)", series)


#: Profiles whose metrics hold load `levels` (kubeinfer/bench/profiles/load.py).
LOAD_PROFILES = ("interactive", "batch")


def load_levels(result: ProfileResult | None) -> list[dict[str, Any]]:
    levels = result.metrics.get("levels") if result else None
    return [level for level in levels if isinstance(level, dict)] if isinstance(levels, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def latency_points(name: str, levels: list[dict[str, Any]], latency: str) -> tuple[Point, ...]:
    """(output tokens/s, latency) of each level, lowest load first, labelled with the level."""
    points = []
    for level in levels:
        x, y = _number(level.get("output_tokens_per_second")), _number(level.get(latency))
        if x is None or y is None:
            continue
        flag = "" if level.get("sustainable", True) else " (not sustainable)"
        label = f"{name} {level.get('label')}: {format_number(x)} t/s, {latency} {format_number(y)} s{flag}"
        points.append(Point(x, y, label))
    return tuple(points)


def latency_chart(cells: list[CellResult], latency: str, title: str) -> Markup | None:
    """`latency` against output throughput across load levels: one curve per cell and load profile."""
    series = []
    for cell in cells:
        for profile in LOAD_PROFILES:
            name = f"{cell.key} {profile}"
            series.append(Series(name, latency_points(name, load_levels(cell.profiles.get(profile)), latency)))
    return line_chart(title, "output tokens/s", f"{latency.removesuffix('_seconds')} (s)", series)


def cell_curves(cell: CellResult) -> Markup | None:
    """One cell's curves: TTFT p95 and end-to-end p95 against output tokens/s, per load profile."""
    series = []
    for profile in LOAD_PROFILES:
        levels = load_levels(cell.profiles.get(profile))
        for latency in ("ttft_p95_seconds", "e2e_p95_seconds"):
            name = f"{profile} {latency.removesuffix('_seconds')}"
            series.append(Series(name, latency_points(name, levels, latency)))
    if sum(len(s.points) for s in series) < 2:
        return None
    return line_chart(f"{cell.key}: latency vs throughput", "output tokens/s", "latency (s)", series)


def charts(cells: list[CellResult]) -> list[dict[str, Any]]:
    return [
        {
            "title": "Time to first token (p95) vs output throughput, per load level",
            "svg": latency_chart(cells, "ttft_p95_seconds", "TTFT p95 vs throughput"),
            "empty": "No load levels recorded (interactive and batch did not run).",
        },
        {
            "title": "Inter-token latency (p95) vs output throughput, per load level",
            "svg": latency_chart(cells, "itl_p95_seconds", "ITL p95 vs throughput"),
            "empty": "No load levels recorded (interactive and batch did not run).",
        },
        {
            "title": "Tokens/s vs model size, by quantization",
            "svg": tokens_chart(cells),
            "empty": "No interactive results with a known model size.",
        },
        {
            "title": "Memory vs model size, by quantization",
            "svg": memory_chart(cells),
            "empty": "No measured peak memory.",
        },
        {
            "title": "Quality vs quantization, by model",
            "svg": quality_chart(cells),
            "empty": "The quality profile did not run.",
        },
        {
            "title": "Context size vs load time",
            "svg": context_chart(cells),
            "empty": "The long-context profile did not run.",
        },
        {
            "title": "Temperature over time (stress)",
            "svg": temperature_chart(cells),
            "empty": "No temperature samples: stress did not run, or the host exposes no sensor.",
        },
    ]


# --- Per-cell details ---------------------------------------------------------------------------------


def _fact(label: str, value: Any, name: str = "", title: str = "") -> dict[str, str]:
    return {"label": label, "value": format_value(name, value), "title": title}


def cell_facts(cell: CellResult) -> list[dict[str, str]]:
    memory = memory_gb(cell)
    return [
        _fact("status", cell.status.value),
        _fact("rule", cell.rule.value if cell.rule else None),
        _fact("reason", cell.reason),
        _fact("parameters", f"{cell.model_size_b:g} B"),
        _fact("file size", cell.model_size_gb, "_gb"),
        _fact("peak memory", cell.peak_memory_gb, "_gb", interpret("memory_gb", memory) if memory is not None else ""),
        _fact("estimated memory", cell.estimated_memory_gb, "_gb"),
        _fact("load time", cell.load_seconds, "_seconds"),
        _fact("threads", cell.threads),
        _fact("model path", cell.model_path),
    ]


#: Level columns of the per-cell load table: (metric key in a level, heading).
LEVEL_COLUMNS = (
    ("achieved_rps", "req/s"),
    ("output_tokens_per_second", "output t/s"),
    ("ttft_p50_seconds", "TTFT p50"),
    ("ttft_p95_seconds", "TTFT p95"),
    ("ttft_p99_seconds", "TTFT p99"),
    ("itl_p50_seconds", "ITL p50"),
    ("itl_p95_seconds", "ITL p95"),
    ("e2e_p95_seconds", "E2E p95"),
    ("queue_wait_p95_seconds", "queue p95"),
    ("goodput_rps", "goodput req/s"),
)
#: Metrics shown in their own table rather than as rows.
LEVEL_METRICS = ("levels", "saturation")


def level_rows(result: ProfileResult) -> list[dict[str, Any]]:
    rows = []
    for level in load_levels(result):
        values = [format_value(key, level.get(key)) for key, _ in LEVEL_COLUMNS]
        if level.get("kind") == "rate":
            values[0] += f" of {format_number(float(level.get('offered_rps') or 0))}"
        state = (
            "sustainable"
            if level.get("sustainable")
            else (level.get("saturation") or "; ".join(level.get("slo_misses") or []) or "errors")
        )
        rows.append(
            {"label": level.get("label"), "cells": values, "state": state, "ok": bool(level.get("sustainable"))}
        )
    return rows


def metric_rows(result: ProfileResult) -> list[dict[str, str]]:
    rows = []
    for name, value in result.metrics.items():
        if name in LEVEL_METRICS:
            continue
        title = result.interpretation.get(name, "")
        if isinstance(value, dict):
            title = "; ".join(
                f"{size}: {text}" for size in value if (text := result.interpretation.get(f"{name}.{size}"))
            )
        rows.append({"name": name, "value": format_value(name, value), "title": title})
    return rows


def cell_details(index: int, cell: CellResult) -> dict[str, Any]:
    log = (cell.server_log or "").splitlines()[-LOG_TAIL_LINES:]
    return {
        "anchor": f"cell-{index}",
        "key": cell.key,
        "status": cell.status.value,
        "rating": cell_rating(cell),
        "facts": cell_facts(cell),
        "profiles": [
            {
                "name": name,
                "status": result.status,
                "rating": result.rating,
                "reason": result.reason,
                "metrics": metric_rows(result),
                "levels": level_rows(result),
                "saturation": result.metrics.get("saturation_reason"),
            }
            for name, result in cell.profiles.items()
        ],
        "curves": cell_curves(cell),
        "level_columns": [heading for _, heading in LEVEL_COLUMNS],
        "log": "\n".join(log),
    }
