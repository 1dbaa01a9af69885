"""JSON, CSV and HTML reports written from hand-built cell results."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.bench import report as report_package
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.bench.recommend import recommend
from kubeinfer.bench.report import write_reports
from kubeinfer.bench.report.csv_report import COLUMNS
from kubeinfer.bench.report.html_report import format_value
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult, Profiles, Rule

GIB = 1024**3
EVIL = "<script>alert(1)</script>"


def rated(name: str, **metrics: Any) -> ProfileResult:
    return rate_profile(name, ProfileResult(status="passed", metrics=metrics), Profiles())


def passed_cell(model: str, quant: str, size_gb: float, tps: float, score: float) -> CellResult:
    return CellResult(
        model=model,
        quantization=quant,
        model_size_b=size_gb * 2,
        model_size_gb=size_gb,
        threads=4,
        status=CellStatus.passed,
        peak_memory_gb=size_gb * 1.3,
        load_seconds=2.5,
        profiles={
            "interactive": rated(
                "interactive",
                ttft_seconds=1.2,
                tokens_per_second=tps,
                variance_percent=6.0,
                server_ttft_seconds=1.1,
                server_tokens_per_second=tps + 1,
            ),
            "long_context": rated(
                "long_context",
                load_seconds_by_context={"4096": 2.0, "8192": 5.5},
                max_context_ok=8192,
                initial_load_seconds=5.5,
                swap_used_bytes=0,
            ),
            "batch": rated(
                "batch",
                documents=30,
                seconds_per_document=20.0,
                throughput_docs_per_hour=180.0,
                variance_percent=4.0,
                degradation_percent=1.0,
                memory_drift_percent=0.5,
            ),
            "quality": rated(
                "quality",
                math_score=score,
                comprehension_score=score,
                reasoning_score=score,
                format_compliance=100.0,
                overall_score=score,
            ),
        },
    )


def stressed(cell: CellResult, temperatures: list[float | None]) -> CellResult:
    samples = [
        {"t": 30.0 * i, "temperature_celsius": temp, "cpu_mhz": 2400.0, "rss_bytes": GIB, "swap_bytes": 0}
        for i, temp in enumerate(temperatures)
    ]
    known = [t for t in temperatures if t is not None]
    cell.profiles["stress"] = rated(
        "stress",
        duration_seconds=1800.0,
        tokens_per_second=20.0,
        tokens_per_second_drift_percent=-2.0,
        max_temperature_celsius=max(known) if known else None,
        min_cpu_mhz=2400.0,
        max_cpu_mhz=2400.0,
        throttled=False,
        swap_used_bytes=0,
        peak_rss_bytes=GIB,
        aborted=False,
        samples=samples,
    )
    return cell


@pytest.fixture
def cells() -> list[CellResult]:
    return [
        stressed(passed_cell("smollm2-135m", "Q4_K_M", 0.1, 80.0, 60.0), [45.0, 52.5, None, 58.0]),
        passed_cell("smollm2-135m", "Q8_0", 0.15, 60.0, 70.0),
        passed_cell("qwen2.5-0.5b", "Q4_K_M", 0.4, 30.0, 85.0),
        CellResult(
            model="qwen2.5-0.5b",
            quantization="Q8_0",
            model_size_b=0.5,
            status=CellStatus.skipped,
            rule=Rule.preflight_memory,
            reason="needs 9.1 GB, 8 GB available",
        ),
        CellResult(
            model="llama-7b",
            quantization="Q2_K",
            model_size_b=7.0,
            status=CellStatus.failed,
            rule=Rule.performance_threshold,
            reason="critical tokens_per_second should be at least 2",
            profiles={"interactive": rated("interactive", ttft_seconds=40.0, tokens_per_second=1.0)},
        ),
    ]


def document(cells: list[CellResult]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "nightly",
            "timestamp": "2024-01-15T14:30:00+00:00",
            "hostname": "mini-pc-01",
            "hardware": {"cpu": "Intel N100", "cpus": 4, "ram_gb": 16, "os": "Ubuntu 22.04"},
            "config": {"models": [{"name": "smollm2-135m"}], "mode": "full"},
            "test_duration_seconds": 7200.0,
            "kubeinfer_version": "0.1.0",
            "engine": {"name": "llama.cpp", "version": "b4000"},
        },
        "results": [cell.model_dump(mode="json", by_alias=False) for cell in cells],
        "recommendations": recommend(cells),
    }


def test_writes_every_format_atomically(tmp_path: Path, cells: list[CellResult]) -> None:
    written = write_reports(document(cells), tmp_path / "out", ["json", "csv", "html"])
    assert written == {fmt: tmp_path / "out" / f"report.{fmt}" for fmt in ("json", "csv", "html")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.csv", "report.html", "report.json"]


def test_unknown_format_is_refused_before_anything_is_written(tmp_path: Path, cells: list[CellResult]) -> None:
    with pytest.raises(ValueError, match="pdf"):
        write_reports(document(cells), tmp_path, ["json", "pdf"])
    assert list(tmp_path.iterdir()) == []


def test_failed_rendering_keeps_the_previous_reports(
    tmp_path: Path, cells: list[CellResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_reports(document(cells), tmp_path, ["json"])
    before = (tmp_path / "report.json").read_text()

    def broken(_data: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setitem(report_package.RENDERERS, "csv", broken)
    with pytest.raises(RuntimeError):
        write_reports(document(cells[:1]), tmp_path, ["json", "csv"])
    assert (tmp_path / "report.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_json_follows_the_seed_structure(tmp_path: Path, cells: list[CellResult]) -> None:
    data = json.loads(write_reports(document(cells), tmp_path, ["json"])["json"].read_text())
    assert list(data)[:3] == ["metadata", "results", "recommendations"]
    assert {
        "timestamp",
        "hostname",
        "hardware",
        "config",
        "test_duration_seconds",
        "kubeinfer_version",
        "engine",
    } <= set(data["metadata"])
    assert set(data["metadata"]["hardware"]) == {"cpu", "cpus", "ram_gb", "os"}
    first = data["results"][0]
    assert {
        "model",
        "quantization",
        "model_path",
        "model_size_gb",
        "threads",
        "status",
        "reason",
        "rule",
        "profiles",
    } <= set(first)
    interactive = first["profiles"]["interactive"]
    assert set(interactive) == {"status", "metrics", "rating", "reason", "interpretation"}
    assert interactive["metrics"]["tokens_per_second"] == 80.0
    assert interactive["interpretation"]["tokens_per_second"] == "Nearly instant for most prompts"
    assert data["results"][3]["rule"] == "preflight_memory"
    assert data["recommendations"]["overall_best"]["cell"] == "qwen2.5-0.5b/Q4_K_M"
    assert data["best"] == "qwen2.5-0.5b/Q4_K_M"
    assert [CellResult.model_validate(item) for item in data["results"]] == cells


def test_recommendations_are_computed_when_missing(tmp_path: Path, cells: list[CellResult]) -> None:
    @dataclass
    class Outcome:
        metadata: dict[str, Any]
        cells: list[CellResult]

    path = write_reports(Outcome({"hostname": "h"}, cells), tmp_path, ["json"])["json"]
    data = json.loads(path.read_text())
    assert data["recommendations"] == json.loads(json.dumps(recommend(cells)))
    assert "timestamp" in data["metadata"]
    assert "kubeinfer_version" in data["metadata"]
    assert len(data["results"]) == len(cells)


def test_csv_has_the_seed_header_and_one_row_per_cell(tmp_path: Path, cells: list[CellResult]) -> None:
    path = write_reports(document(cells), tmp_path, ["csv"])["csv"]
    rows = list(csv.DictReader(path.read_text().splitlines()))
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["model", "quant", "size_gb", "memory_gb"]
    assert {
        "status",
        "reason",
        "interactive_ttft",
        "interactive_tps",
        "interactive_rating",
        "long_context_load",
        "long_context_max",
        "batch_throughput",
        "quality_score",
        "stress_max_temp",
    } <= set(header)
    assert header == list(COLUMNS)
    assert len(rows) == len(cells)
    assert rows[0]["interactive_tps"] == "80.0"
    assert rows[0]["stress_max_temp"] == "58.0"
    assert rows[3]["status"] == "skipped"
    assert rows[3]["interactive_tps"] == ""
    assert rows[3]["reason"] == "needs 9.1 GB, 8 GB available"


def html_for(tmp_path: Path, cells: list[CellResult]) -> str:
    return write_reports(document(cells), tmp_path, ["html"])["html"].read_text()


def test_html_shows_every_cell_and_the_summary(tmp_path: Path, cells: list[CellResult]) -> None:
    html = html_for(tmp_path, cells)
    for cell in cells:
        assert cell.key in html
    assert "Overall best: qwen2.5-0.5b/Q4_K_M" in html
    assert "Intel N100" in html
    assert "2h 00m 00s" in html
    assert 'title="Nearly instant for most prompts"' in html  # interpretations as tooltips
    assert "needs 9.1 GB, 8 GB available" in html


def test_html_draws_the_five_charts_inline(tmp_path: Path, cells: list[CellResult]) -> None:
    html = html_for(tmp_path, cells)
    for title in (
        "Tokens/s vs model size",
        "Memory vs model size",
        "Quality vs quantization",
        "Context size vs load time",
        "Temperature over time (stress)",
    ):
        assert f'aria-label="{title}"' in html
    assert html.count("<svg") == 5


def test_html_temperature_chart_explains_a_missing_sensor(tmp_path: Path, cells: list[CellResult]) -> None:
    stressed(cells[0], [None, None])
    html = html_for(tmp_path, cells)
    assert "the host exposes no sensor" in html
    assert html.count("<svg") == 4


def test_html_is_self_contained(tmp_path: Path, cells: list[CellResult]) -> None:
    html = html_for(tmp_path, cells)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "http://" not in html
    assert "https://" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert "<script src" not in html


def test_html_escapes_user_text(tmp_path: Path, cells: list[CellResult]) -> None:
    cells[1].model = EVIL
    cells[1].reason = '"><img onerror=x>'
    html = html_for(tmp_path, cells)
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img onerror" not in html
    assert html.count("<script>") == 1  # only the report's own table-sorting script


def test_html_renders_with_no_cells(tmp_path: Path) -> None:
    html = write_reports({"metadata": {}, "results": []}, tmp_path, ["html"])["html"].read_text()
    assert "no overall recommendation" in html


def test_template_ships_as_package_data() -> None:
    template = resources.files("kubeinfer.bench.report").joinpath("templates/report.html")
    assert template.is_file()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("peak_rss_bytes", 3 * GIB, "3.00 GiB"),
        ("ttft_seconds", 2.345, "2.35 s"),
        ("itl_p95_seconds", 0.02465, "24.6 ms"),
        ("tokens_per_second", 18.5, "18.5 t/s"),
        ("max_context_ok", 32768, "32,768"),
        ("throttled", False, "no"),
        ("max_temperature_celsius", None, "–"),
        ("skipped_context_sizes", [16384, 32768], "16384, 32768"),
        ("samples", [{"t": 0}, {"t": 30}], "2 samples"),
        ("load_seconds_by_context", {"4096": 1.5}, "4096: 1.50 s"),
    ],
)
def test_metric_values_are_formatted_for_people(name: str, value: Any, expected: str) -> None:
    assert format_value(name, value) == expected
