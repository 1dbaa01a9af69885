"""Traffic shapes, percentiles, goodput and saturation on constructed request records (no server)."""

from __future__ import annotations

import math

import pytest

from kubeinfer.bench.client import ChatClient, ServerError
from kubeinfer.bench.load.driver import Level, LevelDriver, LevelRun, RequestOptions, RequestRecord, poisson_arrivals
from kubeinfer.bench.load.goodput import goodput_rps, is_good, slo_misses
from kubeinfer.bench.load.records import jsonl_sink, read_records
from kubeinfer.bench.load.shapes import sample_conversations, scenario_of, tokens_needed
from kubeinfer.bench.load.stats import percentile, summarize, traffic_sent
from kubeinfer.bench.load.sweep import (
    LevelResult,
    falling_behind,
    measure_level,
    queue_growth,
    run_sweep,
    saturation,
    sweep_levels,
)
from kubeinfer.resources.benchmark_matrix import Slo, Sweep, Traffic, parse_scenario
from tests.unit.bench.records import record

# --- shapes ---------------------------------------------------------------------------------------------


def test_fixed_scenario_sends_exactly_its_counts() -> None:
    traffic = Traffic(scenario="D(100,20)")
    conversations = sample_conversations(traffic, scenario_of(traffic, 1, 1), 5, 1024)
    assert [(t.input_tokens, t.output_tokens) for c in conversations for t in c.turns] == [(100, 20)] * 5


def test_normal_and_uniform_samples_are_seeded_and_within_bounds() -> None:
    uniform = Traffic(scenario="U(10,50)/(5,9)", seed=7)
    first = sample_conversations(uniform, scenario_of(uniform, 1, 1), 200, 4096)
    again = sample_conversations(uniform, scenario_of(uniform, 1, 1), 200, 4096)
    assert first == again
    shapes = [t for c in first for t in c.turns]
    assert {s.input_tokens for s in shapes} <= set(range(10, 51))
    assert {s.output_tokens for s in shapes} <= set(range(5, 10))
    assert len({s.input_tokens for s in shapes}) > 20
    other = sample_conversations(Traffic(scenario="U(10,50)/(5,9)", seed=8), scenario_of(uniform, 1, 1), 200, 4096)
    assert other != first

    normal = Traffic(scenario="N(200,40)/(50,5)")
    shapes = [t for c in sample_conversations(normal, scenario_of(normal, 1, 1), 2000, 4096) for t in c.turns]
    mean_in = sum(s.input_tokens for s in shapes) / len(shapes)
    assert mean_in == pytest.approx(200, rel=0.05)
    assert min(s.input_tokens for s in shapes) >= 1


def test_unset_scenario_is_the_profiles_own_fixed_shape() -> None:
    scenario = scenario_of(Traffic(), 320, 64)
    assert (scenario.distribution, scenario.input[0], scenario.output[0]) == ("fixed", 320, 64)


def test_shapes_are_clipped_to_the_slot() -> None:
    traffic = Traffic(scenario="N(900,300)/(200,10)")
    conversations = sample_conversations(traffic, scenario_of(traffic, 1, 1), 300, 1024, margin=64)
    assert all(t.input_tokens + t.output_tokens <= 960 for c in conversations for t in c.turns)


def test_turns_carry_earlier_turns_and_fit_the_slot_together() -> None:
    traffic = Traffic(scenario="D(100,50)", turns=3)
    conversations = sample_conversations(traffic, scenario_of(traffic, 1, 1), 7, 2048)
    assert [len(c.turns) for c in conversations] == [3, 3, 1]
    assert tokens_needed(traffic, parse_scenario("D(100,50)")) == 450


def test_shared_prefix_goes_to_about_its_share_of_conversations() -> None:
    traffic = Traffic(scenario="D(50,10)", shared_prefix_tokens=200, shared_prefix_share=0.25)
    conversations = sample_conversations(traffic, scenario_of(traffic, 1, 1), 400, 2048)
    share = sum(c.turns[0].prefixed for c in conversations) / len(conversations)
    assert share == pytest.approx(0.25, abs=0.06)
    assert tokens_needed(traffic, parse_scenario("D(50,10)")) == 260


def test_a_prefix_longer_than_the_slot_is_refused_naming_the_slot() -> None:
    traffic = Traffic(scenario="D(50,10)", shared_prefix_tokens=4000, shared_prefix_share=1)
    with pytest.raises(ValueError, match="one slot of 1024 tokens"):
        sample_conversations(traffic, scenario_of(traffic, 1, 1), 3, 1024)


def test_poisson_arrivals_have_the_rate_on_average() -> None:
    arrivals = poisson_arrivals(4.0, 4001, seed=3)
    assert arrivals[0] == 0
    assert all(b >= a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert 4000 / arrivals[-1] == pytest.approx(4.0, rel=0.08)
    assert poisson_arrivals(4.0, 50, seed=3) == arrivals[:50]


# --- stats ----------------------------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None
    assert percentile([1.0, math.inf], 0) == 1.0
    with pytest.raises(ValueError, match="outside 0-100"):
        percentile(values, 101)


def test_level_summary_has_every_percentile_and_throughput_over_the_span() -> None:
    records = [record(sent=i * 1.0, ttft=0.1 * (i + 1), e2e=1.0, index=i) for i in range(10)]
    summary = summarize(records)
    for name in ("ttft", "itl", "e2e", "queue_wait"):
        for p in (50, 90, 95, 99):
            assert f"{name}_p{p}_seconds" in summary
    assert summary["ttft_p50_seconds"] == pytest.approx(0.55)
    assert summary["itl_p95_seconds"] == pytest.approx(0.05)
    assert summary["duration_seconds"] == 10.0
    assert summary["achieved_rps"] == 1.0
    assert summary["output_tokens_per_second"] == 3.0
    assert summary["input_tokens_per_second"] == 100.0
    assert summary["errors"] == 0


def test_failed_requests_count_as_errors_not_throughput() -> None:
    records = [record(0), record(1, error="HTTP 503", index=1)]
    summary = summarize(records)
    assert summary["errors"] == 1
    assert traffic_sent(records)["input_tokens"] == {"mean": 100.0, "min": 100, "max": 100}


# --- goodput --------------------------------------------------------------------------------------------


def test_goodput_counts_requests_meeting_every_limit() -> None:
    slo = Slo(ttft_seconds=0.5, itl_seconds=0.1)
    fast = record(0, ttft=0.2, gaps=(0.05, 0.06))
    slow_start = record(1, ttft=0.9, index=1)
    jittery = record(2, ttft=0.2, gaps=(0.05, 0.3), index=2)
    failed = record(3, error="boom", index=3)
    assert is_good(fast, slo)
    assert not is_good(slow_start, slo)
    assert not is_good(jittery, slo)
    assert not is_good(failed, slo)
    assert goodput_rps([fast, slow_start, jittery, failed], slo) == pytest.approx(1 / 4.0)


def test_slo_is_judged_at_its_percentile() -> None:
    records = [record(i, ttft=0.1, index=i) for i in range(19)] + [record(19, ttft=5.0, index=19)]
    assert slo_misses(records, Slo(ttft_seconds=1, percentile=90)) == []
    misses = slo_misses(records, Slo(ttft_seconds=1, percentile=99))
    assert len(misses) == 1
    assert misses[0].startswith("ttft p99 ")
    assert slo_misses([*records[:5], record(6, error="x")], Slo(e2e_seconds=10, percentile=99)) != []


# --- saturation -----------------------------------------------------------------------------------------


def level_result(kind: str, value: float, output_tps: float, records: list[RequestRecord] | None = None) -> LevelResult:
    run = LevelRun(Level(kind, value), records or [record(0)])  # type: ignore[arg-type]
    result = measure_level(run, None)
    result.summary["output_tokens_per_second"] = output_tps
    return result


def test_throughput_gain_below_the_limit_saturates() -> None:
    before, flat, rising = level_result("concurrency", 1, 100), level_result("concurrency", 2, 103), None
    why = saturation(before, flat, gain_percent=5)
    assert why is not None
    assert "+3.0%" in why
    assert "concurrency 2" in why
    rising = level_result("concurrency", 2, 180)
    assert saturation(before, rising, gain_percent=5) is None
    assert saturation(None, before, gain_percent=5) is None


def test_open_loop_falling_behind_its_arrivals_saturates() -> None:
    arrivals = [i * 0.1 for i in range(10)]
    slow = [record(a, e2e=0.5 + i * 0.4, index=i) for i, a in enumerate(arrivals)]
    why = falling_behind(LevelRun(Level("rate", 10), slow, arrivals))
    assert why is not None
    assert "falling behind" in why
    kept_up = [record(a, e2e=0.5, index=i) for i, a in enumerate(arrivals)]
    assert falling_behind(LevelRun(Level("rate", 10), kept_up, arrivals)) is None


def test_queue_growing_through_a_level_saturates() -> None:
    growing = [record(i * 0.5, e2e=1.0, queue=0.2 * i * i, index=i) for i in range(12)]
    why = queue_growth(growing)
    assert why is not None
    assert "queue growing" in why
    steady = [record(i * 0.5, e2e=1.0, queue=0.05, index=i) for i in range(12)]
    assert queue_growth(steady) is None


def test_sweep_runs_levels_lowest_first_and_stops_at_saturation() -> None:
    sweep = Sweep(concurrency=[4, 1, 2, 8], saturation_gain_percent=5)
    series = sweep_levels(sweep)
    assert [level.value for level in series[0]] == [1, 2, 4, 8]
    throughput = {1: 1.0, 2: 1.9, 4: 1.95, 8: 4.0}
    ran: list[float] = []

    def run_level(level: Level) -> LevelRun:
        ran.append(level.value)
        # output tokens over a 1 s span: `throughput` requests of 1 token each
        count = round(throughput[int(level.value)] * 100)
        return LevelRun(level, [record(i / count, e2e=0.0, output=1, index=i) for i in range(count)])

    result = run_sweep(series, run_level, None, 5)
    assert ran == [1, 2, 4]
    assert result.stops[0]["saturated"] is True
    assert result.stops[0]["level"] == "concurrency 4"
    assert [r.sustainable for r in result.levels] == [True, True, False]
    best = result.best()
    assert best is not None
    assert best.level.value == 2


def test_sweep_without_saturation_says_every_level_ran() -> None:
    def run_level(level: Level) -> LevelRun:
        count = int(level.value * 10)
        return LevelRun(level, [record(i / count, e2e=0.0, output=1, index=i) for i in range(count)])

    result = run_sweep(sweep_levels(Sweep(concurrency=[1, 2])), run_level, None, 5)
    assert result.stops == [
        {
            "kind": "concurrency",
            "saturated": False,
            "level": None,
            "reason": "every level ran without saturating (up to concurrency 2)",
        }
    ]


def test_a_level_missing_its_slo_is_not_sustainable() -> None:
    run = LevelRun(Level("rate", 1), [record(i, ttft=2.0, index=i) for i in range(5)])
    result = measure_level(run, Slo(ttft_seconds=1))
    assert not result.sustainable
    data = result.to_json()
    assert data["meets_slo"] is False
    assert data["goodput_rps"] == 0
    assert data["offered_rps"] == 1


# --- records --------------------------------------------------------------------------------------------


def test_records_are_written_whole_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink = jsonl_sink(tmp_path / "requests", "m_Q4_1")
    sink("interactive", [record(0).to_json(), record(1, index=1).to_json()])
    sink("interactive", [record(2, index=2).to_json()])
    path = tmp_path / "requests" / "m_Q4_1_interactive.jsonl"
    rows = read_records(path)
    assert [r["sent_seconds"] for r in rows] == [2]
    path.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(ValueError, match=r"m_Q4_1_interactive.jsonl:2: a record must be a JSON object"):
        read_records(path)
    path.write_text("{oops\n")
    with pytest.raises(ValueError, match=r":1: not JSON"):
        read_records(path)


def test_a_level_whose_every_request_failed_is_a_server_error() -> None:
    """Nothing listens on the port: each request fails to connect, and the level reports the first error."""
    traffic = Traffic(scenario="D(10,4)")
    conversations = sample_conversations(traffic, scenario_of(traffic, 1, 1), 3, 1024)
    messages = [[{"role": "user", "content": "hi"}] for _ in conversations]
    with ChatClient("http://127.0.0.1:9", "m", timeout_seconds=5) as client:
        driver = LevelDriver(client, "interactive", RequestOptions(temperature=0, cache_prompt=False, seed=1))
        with pytest.raises(ServerError, match="every request of concurrency 2 failed; the first: stream failed"):
            driver.run(Level("concurrency", 2), conversations, messages)
        with pytest.raises(ServerError, match="every request of rate 50/s failed"):
            driver.run(Level("rate", 50), conversations, messages)
