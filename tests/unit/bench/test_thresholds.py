"""Performance thresholds decide a cell's status here, with no engine: the e2e matrix's cannot be missed.

The engine and cluster tests run tests/engine/matrix.yaml and compare statuses between runs; these tests
keep the threshold behaviour itself (a slow interactive run fails the cell by rule 3) where no machine's
speed can change the outcome.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubeinfer.bench.outcome import judge_cell
from kubeinfer.bench.profiles import interactive
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellStatus, InteractiveProfile, ProfileResult, Rule
from tests.conftest import E2E_MATRIX, matrix_verdicts

SLOW = {"ttft_seconds": 45.0, "tokens_per_second": 0.5, "variance_percent": 12.0}
#: Far slower than the busiest machine the suite ran on (2 cores shared by a build and three sessions).
CRAWLING = {"ttft_seconds": 3000.0, "tokens_per_second": 0.01, "variance_percent": 900.0}


def e2e_matrix() -> BenchmarkMatrix:
    return BenchmarkMatrix.model_validate(yaml.safe_load(E2E_MATRIX.read_text()))


def test_slow_interactive_run_misses_the_default_thresholds_and_fails_the_cell_by_rule_3() -> None:
    missed = interactive.failures(SLOW, InteractiveProfile())
    assert missed == ["time to first token 45.00s > 30s", "0.50 tokens/s < 2"]
    profiles = BenchmarkMatrix.model_validate(
        {"metadata": {"name": "m"}, "spec": {"models": [{"name": "m", "size": "1B", "files": {"Q4_1": "pypi:m"}}]}}
    ).spec.profiles
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=SLOW), profiles)
    assert (rated.status, rated.rating) == ("failed", "failed")
    status, rule, _ = judge_cell({"interactive": rated})
    assert (status, rule) == (CellStatus.failed, Rule.performance_threshold)


@pytest.mark.parametrize("metrics", [SLOW, CRAWLING])
def test_the_e2e_matrix_thresholds_pass_any_measured_speed(metrics: dict[str, Any]) -> None:
    profiles = e2e_matrix().spec.profiles
    assert interactive.failures(metrics, profiles.interactive) == []
    rated = rate_profile("interactive", ProfileResult(status="passed", metrics=metrics), profiles)
    assert rated.status == "passed"
    assert rated.rating in ("excellent", "good", "acceptable")
    slow_load = {
        "initial_load_seconds": 10 * metrics["ttft_seconds"],
        "load_seconds_by_context": {"256": metrics["ttft_seconds"], "1024": 10 * metrics["ttft_seconds"]},
        "max_context_ok": 1024,
        "swap_used_bytes": 0,
    }
    loaded = rate_profile("long_context", ProfileResult(status="passed", metrics=slow_load), profiles)
    assert loaded.status == "passed"


def test_matrix_verdicts_leave_out_only_the_stress_stage_s_machine_facts() -> None:
    def cell(quant: str, status: str, **profiles: str) -> dict[str, Any]:
        return {
            "model": "m",
            "quantization": quant,
            "status": status,
            "rule": None,
            "profiles": {name: {"status": value} for name, value in profiles.items()},
        }

    cells = [
        cell("Q4_1", "partial", interactive="passed", stress="failed"),
        cell("Q8_0", "partial", interactive="passed", quality="failed", stress="skipped"),
        cell("Q4_K_M", "passed", interactive="passed"),
    ]
    assert matrix_verdicts(cells) == {
        "m/Q4_1": ("passed", None),
        "m/Q8_0": ("partial", None),
        "m/Q4_K_M": ("passed", None),
    }
