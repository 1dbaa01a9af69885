"""`kubeinfer bench run` with a price: cold and warm load times and cost per 1M tokens, on the real engine.

One cell (SmolLM2 Q4_1, interactive profile only) keeps it short. Nothing here depends on machine speed: the
costs are checked against the cell's own measured rates, not against figures.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import E2E_MATRIX


def one_cell_manifest(tmp_path: Path, placement: dict[str, object]) -> Path:
    data = yaml.safe_load(E2E_MATRIX.read_text())
    data["metadata"]["name"] = "priced"
    data["spec"]["models"][0]["files"] = {"Q4_1": "pypi:smollm2-135m"}
    data["spec"]["placement"] = placement
    profiles = data["spec"]["profiles"]
    for name in ("longContext", "batch", "quality", "stress"):
        profiles[name] = {"enabled": False}
    path = tmp_path / "priced.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(manifest: Path, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "run", str(manifest), "--out-dir", str(out)]
    env = {**os.environ, "COLUMNS": "200"}  # the summary table at full width, headers unabridged
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)


def test_priced_run_reports_cold_and_warm_load_and_cost_per_million_tokens(
    tmp_path: Path, engine_install: object, smollm2_gguf: Path
) -> None:
    out = tmp_path / "out"
    proc = run(one_cell_manifest(tmp_path, {"pricePerHour": 0.5, "currency": "EUR"}), out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = json.loads((out / "report.json").read_text())["results"]
    assert cell["status"] in ("passed", "partial"), cell["reason"]
    assert cell["cold_load_seconds"] > 0
    assert cell["load_seconds"] > 0
    assert (out / "logs" / "smollm2-135m_Q4_1-cold.log").read_text().strip(), "the cold start wrote no log"
    assert (cell["price_per_hour"], cell["currency"]) == (0.5, "EUR")
    output_rate = cell["max_sustainable_output_tokens_per_second"]
    assert output_rate > 0
    assert cell["cost_per_million_output_tokens"] == pytest.approx(0.5 / (output_rate * 3600) * 1e6, rel=1e-5)
    input_rate = cell["max_sustainable_input_tokens_per_second"]
    if input_rate:
        assert cell["cost_per_million_input_tokens"] == pytest.approx(0.5 / (input_rate * 3600) * 1e6, rel=1e-5)
    (row,) = list(csv.DictReader((out / "report.csv").open()))
    assert float(row["cold_load_seconds"]) == cell["cold_load_seconds"]
    assert float(row["cost_per_million_output_tokens"]) == cell["cost_per_million_output_tokens"]
    assert row["currency"] == "EUR"
    assert "EUR/1M tok" in proc.stdout
    assert f"{cell['cold_load_seconds']:.2f}/{cell['load_seconds']:.2f}" in proc.stdout


def test_unpriced_run_has_load_times_and_no_cost(tmp_path: Path, engine_install: object, smollm2_gguf: Path) -> None:
    out = tmp_path / "out"
    proc = run(one_cell_manifest(tmp_path, {}), out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = json.loads((out / "report.json").read_text())["results"]
    assert cell["cold_load_seconds"] > 0
    assert cell["load_seconds"] > 0
    for key in ("price_per_hour", "cost_per_million_output_tokens", "cost_per_million_input_tokens"):
        assert cell[key] is None, key
    assert "/1M tok" not in proc.stdout
