"""Cost and load-time figures in the report files and the summary table, from synthetic cells."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.console import Console

from kubeinfer.bench.report import write_reports
from kubeinfer.cli.bench import _summary_table
from kubeinfer.resources.benchmark_matrix import CellResult, ProfileResult

KEYS = ("cost_per_million_output_tokens", "cost_per_million_input_tokens", "load_seconds", "cold_load_seconds")


def cell(quantization: str, **fields: object) -> CellResult:
    return CellResult.model_validate(
        {
            "model": "m",
            "quantization": quantization,
            "model_size_b": 0.135,
            "status": "passed",
            "profiles": {"interactive": ProfileResult(status="passed", metrics={"tokens_per_second": 50.0})},
            **fields,
        }
    )


PRICED = cell(
    "Q4_K_M",
    load_seconds=0.41,
    cold_load_seconds=0.93,
    price_per_hour=0.5,
    currency="EUR",
    max_sustainable_output_tokens_per_second=80.0,
    cost_per_million_output_tokens=1.73611,
    cost_per_million_input_tokens=0.0868056,
)
UNPRICED = cell("Q8_0", load_seconds=0.5)


def table_text(cells: list[CellResult]) -> str:
    console = Console(width=200, record=True)
    console.print(_summary_table(cells))
    return console.export_text()


def test_json_and_csv_carry_cost_and_load_keys(tmp_path: Path) -> None:
    write_reports({"metadata": {"name": "t"}, "results": [PRICED, UNPRICED]}, tmp_path, ["json", "csv"])
    priced, unpriced = json.loads((tmp_path / "report.json").read_text())["results"]
    assert {key: priced[key] for key in KEYS} == {
        "cost_per_million_output_tokens": 1.73611,
        "cost_per_million_input_tokens": 0.0868056,
        "load_seconds": 0.41,
        "cold_load_seconds": 0.93,
    }
    assert (priced["price_per_hour"], priced["currency"]) == (0.5, "EUR")
    assert {key: unpriced[key] for key in KEYS} == dict.fromkeys(KEYS) | {"load_seconds": 0.5}
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [row["cost_per_million_output_tokens"] for row in rows] == ["1.73611", ""]
    assert [row["cold_load_seconds"] for row in rows] == ["0.93", ""]
    assert [row["currency"] for row in rows] == ["EUR", ""]
    assert [row["max_sustainable_output_tps"] for row in rows] == ["80.0", ""]


def test_summary_table_shows_load_times_and_cost_when_priced() -> None:
    text = table_text([PRICED, UNPRICED])
    assert "EUR/1M tok" in text
    assert "0.93/0.41" in text
    assert "1.74/0.0868" in text
    assert "-/0.50" in text


def test_summary_table_has_no_cost_column_without_a_price() -> None:
    text = table_text([UNPRICED])
    assert "/1M tok" not in text
    assert "cold/warm" in text
