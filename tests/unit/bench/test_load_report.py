"""The HTML report's load levels: latency-vs-throughput curves and the per-level table, from hand-built cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubeinfer.bench.report import write_reports
from kubeinfer.bench.report.html_report import cell_curves, latency_chart, level_rows
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult


def level(label: str, tps: float, ttft: float, sustainable: bool, saturation: str | None = None) -> dict[str, Any]:
    return {
        "kind": "rate",
        "value": float(label.split()[1].rstrip("/s")),
        "label": label,
        "offered_rps": float(label.split()[1].rstrip("/s")),
        "achieved_rps": tps / 30,
        "output_tokens_per_second": tps,
        "ttft_p50_seconds": ttft / 2,
        "ttft_p95_seconds": ttft,
        "ttft_p99_seconds": ttft * 1.2,
        "itl_p50_seconds": 0.02,
        "itl_p95_seconds": 0.05,
        "e2e_p95_seconds": ttft + 1,
        "queue_wait_p95_seconds": 0.0,
        "goodput_rps": tps / 40,
        "meets_slo": sustainable,
        "slo_misses": [] if sustainable else ["ttft p95 3.000s > 1s"],
        "saturation": saturation,
        "sustainable": sustainable,
    }


def swept_cell(quant: str) -> CellResult:
    levels = [
        level("rate 1/s", 30, 0.2, True),
        level("rate 2/s", 58, 0.4, True),
        level("rate 4/s", 60, 3.0, False, "throughput: output 60.0 tokens/s at rate 4/s, +3.4% from 58.0"),
    ]
    metrics = {
        "ttft_seconds": 0.3,
        "tokens_per_second": 20.0,
        "levels": levels,
        "saturation": [{"kind": "rate", "saturated": True, "level": "rate 4/s", "reason": levels[-1]["saturation"]}],
        "saturation_reason": f"rate: {levels[-1]['saturation']}",
    }
    return CellResult(
        model="m",
        quantization=quant,
        model_size_b=0.1,
        status=CellStatus.passed,
        profiles={"interactive": ProfileResult(status="passed", metrics=metrics)},
    )


def test_curves_have_a_point_per_level_and_a_series_per_cell() -> None:
    cells = [swept_cell("Q4_1"), swept_cell("Q8_0")]
    chart = latency_chart(cells, "ttft_p95_seconds", "TTFT p95 vs throughput")
    assert chart is not None
    assert chart.count("<circle") == 6
    assert "m/Q8_0 interactive rate 4/s: 60.0 t/s, ttft_p95_seconds 3.00 s (not sustainable)" in chart
    curves = cell_curves(cells[0])
    assert curves is not None
    assert curves.count("<polyline") == 2, "TTFT p95 and E2E p95 of the interactive profile"


def test_level_table_says_which_levels_were_sustainable_and_why_not() -> None:
    rows = level_rows(swept_cell("Q4_1").profiles["interactive"])
    assert [row["label"] for row in rows] == ["rate 1/s", "rate 2/s", "rate 4/s"]
    assert rows[0]["cells"][0] == "1.00 of 1.00"
    assert [row["ok"] for row in rows] == [True, True, False]
    assert rows[2]["state"].startswith("throughput: ")


def test_html_report_shows_curves_levels_and_the_saturation_reason(tmp_path: Path) -> None:
    report = {"metadata": {"name": "sweep"}, "results": [swept_cell("Q4_1").model_dump(mode="json")]}
    html = write_reports(report, tmp_path, ["html"])["html"].read_text()
    assert "TTFT p95 vs throughput" in html
    assert "m/Q4_1: latency vs throughput" in html
    assert "<th>load level</th>" in html
    assert "Sweep: rate: throughput: output 60.0 tokens/s" in html
    assert ">levels<" not in html, "levels are a table, not a metric row"


def test_cells_without_levels_draw_no_curve() -> None:
    cell = CellResult(model="m", quantization="Q4_1", model_size_b=0.1, status=CellStatus.skipped)
    assert latency_chart([cell], "itl_p95_seconds", "ITL") is None
    assert cell_curves(cell) is None
