"""95% intervals of a load level's rates (requests/s, tokens/s, goodput) from its own requests, and how they
reach the profile's headline, its `sustainable` level and the cell's `max_sustainable_*` figures.

Levels are built from fixed request times: a closed loop hands each request to the slot that frees first.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import pytest

from kubeinfer.bench.intervals import t_critical
from kubeinfer.bench.load.driver import Level, LevelRun, RequestRecord, poisson_arrivals
from kubeinfer.bench.load.rates import rate_interval, rate_intervals
from kubeinfer.bench.load.stats import summarize
from kubeinfer.bench.load.sweep import measure_level, run_sweep, sweep_levels
from kubeinfer.bench.outcome import record_sustainable
from kubeinfer.bench.profiles import batch
from kubeinfer.bench.profiles.interactive import STORY
from kubeinfer.bench.profiles.load import LoadOutcome, ProfileLoad
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, InteractiveProfile, ProfileResult, Slo, Sweep
from tests.unit.bench.records import record

#: Two samples of eight requests from one process (1.7-2.8 s each): their rates differ by 14%.
TIMES = (2.0, 2.3, 1.8, 2.1, 2.6, 1.9, 2.2, 1.7)
TIMES_AGAIN = (2.6, 2.0, 2.4, 2.3, 2.5, 2.8, 2.1, 2.2)
RATE_KEYS = ("achieved_rps", "output_tokens_per_second", "input_tokens_per_second")


def request(sent: float, seconds: float, index: int, output: int = 48, error: str | None = None) -> RequestRecord:
    """A request of `output` tokens 40 ms apart that took `seconds` from `sent`."""
    return record(sent, e2e=seconds, gaps=(0.04,) * (output - 1), output=output, error=error, index=index)


def closed_loop(times: Sequence[float], concurrency: int = 4, outputs: Sequence[int] | None = None) -> LevelRun:
    """A concurrency level whose requests took `times`, each sent when a slot freed."""
    free = [0.0] * concurrency
    records = []
    for index, seconds in enumerate(times):
        slot = min(range(concurrency), key=free.__getitem__)
        output = outputs[index] if outputs else 48
        records.append(request(free[slot], seconds, index, output))
        free[slot] += seconds
    records.sort(key=lambda r: r.sent_seconds)
    return LevelRun(Level("concurrency", float(concurrency)), records)


def swept_cell(times: Sequence[float], quant: str = "Q4_1") -> CellResult:
    """A cell whose interactive profile swept one concurrency-4 level of requests that took `times`."""
    return cell_of_level(closed_loop(times), quant)


def cell_of_level(run: LevelRun, quant: str = "Q4_1") -> CellResult:
    """A cell whose interactive profile swept one level, `run`, through the real summary and headline."""
    settings = InteractiveProfile(sweep=Sweep(concurrency=[4], requests_per_level=len(run.records)))
    result = run_sweep(sweep_levels(settings.sweep or Sweep()), lambda _level: run, None, 5.0)
    load = ProfileLoad("interactive", settings, STORY, 100, 48, 4)
    outcome = LoadOutcome(load, "D(100,48)", result, result.levels[0])
    profile = ProfileResult(status="passed", rating="good", metrics=outcome.metrics())
    cell = CellResult(
        model="smollm2-135m",
        quantization=quant,
        model_size_b=0.135,
        status=CellStatus.passed,
        profiles={"interactive": profile},
    )
    return record_sustainable(cell)


def test_each_rate_gets_an_interval_that_holds_it() -> None:
    run = closed_loop(TIMES)
    summary = measure_level(run, None).summary
    for key in RATE_KEYS:
        low, high = summary[f"{key}_interval"]
        assert low < summary[key] < high


def test_a_closed_loop_interval_is_students_t_of_the_ratio_over_the_requests() -> None:
    """Little's law: rate = L * n / sum(e2e); the interval follows the spread of the requests' times."""
    run = closed_loop(TIMES)
    rps = summarize(run.records)["achieved_rps"]
    low, high = rate_interval(run.records, lambda r: 1.0, open_loop=False, digits=4) or (0, 0)
    # With one count per request the linearized values are R * (2 - e2e_i / mean(e2e)): the half-width is
    # t(0.975, 7) times the times' coefficient of variation over sqrt(8).
    expected = t_critical(7) * statistics.stdev(TIMES) / statistics.fmean(TIMES) / math.sqrt(8)
    assert (high - low) / 2 / rps == pytest.approx(expected, abs=1e-3)
    steady = closed_loop([2.0] * 8)
    assert rate_interval(steady.records, lambda r: 1.0, open_loop=False, digits=4) == [2.0, 2.0]  # 4 slots, 2 s each


def test_token_rates_follow_the_token_counts_too() -> None:
    same_counts = closed_loop([2.0] * 8)
    uneven = closed_loop([2.0] * 8, outputs=[20, 70, 35, 60, 48, 30, 66, 55])
    assert measure_level(same_counts, None).summary["output_tokens_per_second_interval"] == [96.0, 96.0]
    low, high = measure_level(uneven, None).summary["output_tokens_per_second_interval"]
    assert high - low > 30


def test_failed_requests_count_in_the_time_not_in_the_answered_rate() -> None:
    run = closed_loop(TIMES)
    run.records[3] = request(run.records[3].sent_seconds, 0.5, 3, error="boom")
    summary = measure_level(run, None).summary
    low, high = summary["achieved_rps_interval"]
    assert low < summary["achieved_rps"] < high
    assert summary["achieved_rps"] < summarize(closed_loop(TIMES).records)["achieved_rps"]


def test_an_open_loop_keeps_its_arrival_schedule_and_draws_the_times() -> None:
    sends = poisson_arrivals(1.0, 16, seed=3)
    times = [0.6, 0.8, 0.7, 0.9, 0.65, 0.75, 0.85, 0.7, 0.6, 0.95, 0.8, 0.7, 0.75, 0.9, 0.65, 0.8]
    records = [request(at, seconds, i) for i, (at, seconds) in enumerate(zip(sends, times, strict=True))]
    run = LevelRun(Level("rate", 1.0), records, sends)
    found = measure_level(run, None).summary
    low, high = found["achieved_rps_interval"]
    assert low <= found["achieved_rps"] <= high
    # Only the last requests' times move the span: the interval is narrow next to a closed loop's.
    assert (high - low) / found["achieved_rps"] < 0.05
    assert found == measure_level(run, None).summary, "seeded: the same records give the same interval"


def test_goodput_gets_an_interval_with_an_slo_and_too_few_requests_get_none() -> None:
    run = closed_loop(TIMES)
    summary = measure_level(run, Slo(e2e_seconds=2.15)).summary
    low, high = summary["goodput_rps_interval"]
    assert low < summary["goodput_rps"] < high
    assert rate_intervals(closed_loop([2.0], concurrency=1).records, open_loop=False) == {}


def test_the_sustainable_level_and_the_cell_carry_the_intervals_of_the_level_they_came_from() -> None:
    cell = swept_cell(TIMES)
    metrics = cell.profiles["interactive"].metrics
    level = metrics["levels"][0]
    assert metrics["achieved_rps_interval"] == level["achieved_rps_interval"]
    sustainable = metrics["sustainable"]
    assert sustainable["rps_interval"] == level["achieved_rps_interval"]
    assert cell.max_sustainable_rps == level["achieved_rps"]
    assert cell.max_sustainable_rps_interval == level["achieved_rps_interval"]
    assert cell.max_sustainable_output_tokens_per_second_interval == level["output_tokens_per_second_interval"]
    assert cell.max_sustainable_input_tokens_per_second_interval == level["input_tokens_per_second_interval"]
    dumped = cell.model_dump(mode="json", by_alias=True)
    assert dumped["maxSustainableRpsInterval"] == level["achieved_rps_interval"]


def test_a_sustainable_level_from_an_older_report_leaves_the_cell_intervals_empty() -> None:
    metrics = {"sustainable": {"level": "concurrency 4", "swept": True, "rps": 1.9, "output_tokens_per_second": 90}}
    profiles = {"interactive": ProfileResult(status="passed", metrics=metrics)}
    cell = CellResult(model="m", quantization="q", model_size_b=0.1, profiles=profiles)
    record_sustainable(cell)
    assert (cell.max_sustainable_rps, cell.max_sustainable_rps_interval) == (1.9, None)


def test_a_swept_batch_counts_documents_per_hour_from_the_achieved_rate_and_its_interval() -> None:
    metrics = {"achieved_rps": 0.5, "achieved_rps_interval": [0.45, 0.55]}
    assert batch.swept_throughput(metrics) == {
        "throughput_docs_per_hour": 1800.0,
        "throughput_docs_per_hour_interval": [1620.0, 1980.0],
    }
    assert batch.swept_throughput({"achieved_rps": 0.5}) == {"throughput_docs_per_hour": 1800.0}
    assert batch.swept_throughput({"achieved_rps": None}) == {}
