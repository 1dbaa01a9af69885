"""`kubeinfer bench diff`: per-cell, per-metric changes between two reports, noise-aware, gating CI by exit code.

The reports are built by hand so that each case has exactly the change it names; the cluster form is tested
here only for its errors without a cluster (its path against a real control plane is in
tests/cluster/test_bench_diff_cluster.py).
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kubeinfer.bench.diff import DiffInputError, diff_reports, direction, parse_source
from kubeinfer.bench.load.driver import Level, LevelRun, RequestRecord
from kubeinfer.bench.ratings import CHECKS
from kubeinfer.bench.report import as_report_data
from kubeinfer.cli import app
from kubeinfer.resources.benchmark_matrix import CellResult, CellStatus, ProfileResult, Profiles
from testbed.unreachable import unreachable_kubeconfig
from tests.unit.bench.test_rate_intervals import TIMES, TIMES_AGAIN, cell_of_level, swept_cell

runner = CliRunner()


def cell(
    quant: str = "Q4_K_M",
    tps: float = 20.0,
    tps_interval: list[float] | None = None,
    ttft: float = 0.5,
    status: CellStatus = CellStatus.passed,
    **fields: Any,
) -> CellResult:
    metrics: dict[str, Any] = {"tokens_per_second": tps, "ttft_seconds": ttft, "variance_percent": 8.0, "runs": 3}
    if tps_interval is not None:
        metrics["tokens_per_second_interval"] = tps_interval
    interactive = ProfileResult(status="passed", rating="good", metrics=metrics)
    return CellResult(
        model="smollm2-135m",
        quantization=quant,
        model_size_b=0.135,
        status=status,
        profiles={"interactive": interactive},
        **fields,
    )


def write(path: Path, *cells: CellResult) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"metadata": {"name": "q"}, "results": [c.model_dump(mode="json") for c in cells]}
    path.write_text(json.dumps(document))
    return path


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["bench", "diff", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_the_same_report_twice_is_no_regression(tmp_path: Path) -> None:
    report = write(tmp_path / "a.json", cell(max_sustainable_rps=2.0, load_seconds=0.4))
    code, output = run(str(report), str(report))
    assert code == 0
    assert "0 regressions, 0 better, 0 within noise (threshold 10%)" in output


def test_a_throughput_drop_beyond_the_threshold_is_a_regression_naming_the_metric(tmp_path: Path) -> None:
    old = write(tmp_path / "old" / "report.json", cell(tps=20.0), cell("Q8_0", tps=15.0))
    new = write(tmp_path / "new" / "report.json", cell(tps=14.0), cell("Q8_0", tps=15.0))
    code, output = run(str(old.parent), str(new.parent), "--threshold", "5")
    assert code == 1
    assert "regression: smollm2-135m/Q4_K_M interactive.tokens_per_second" in output
    assert "-30.0%" in output
    assert "1 regression," in output
    assert "Q8_0" not in output  # unchanged rows are left out without --all


def test_a_drop_inside_overlapping_intervals_is_within_noise(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(tps=20.0, tps_interval=[16.0, 24.0]))
    new = write(tmp_path / "new.json", cell(tps=15.0, tps_interval=[11.0, 19.0]))
    code, output = run(str(old), str(new))
    assert code == 0
    assert "within noise" in output
    assert "0 regressions, 0 better, 1 within noise" in output


def test_intervals_that_do_not_overlap_are_a_regression(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(tps=20.0, tps_interval=[19.0, 21.0]))
    new = write(tmp_path / "new.json", cell(tps=15.0, tps_interval=[14.0, 16.0]))
    assert run(str(old), str(new))[0] == 1


def test_a_change_inside_the_threshold_is_not_a_regression(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(tps=20.0))
    new = write(tmp_path / "new.json", cell(tps=19.0))
    code, output = run(str(old), str(new), "-o", "wide")
    assert code == 0
    assert "within threshold" in output


def test_direction_decides_what_is_worse(tmp_path: Path) -> None:
    """TTFT and cost are lower-is-better; faster TTFT and a higher sustainable rate are improvements."""
    old = write(tmp_path / "old.json", cell(ttft=0.5, max_sustainable_rps=2.0, cost_per_million_output_tokens=0.2))
    slower = write(
        tmp_path / "slower.json", cell(ttft=0.8, max_sustainable_rps=2.0, cost_per_million_output_tokens=0.3)
    )
    faster = write(
        tmp_path / "faster.json", cell(ttft=0.3, max_sustainable_rps=3.0, cost_per_million_output_tokens=0.1)
    )
    code, output = run(str(old), str(slower), "--json")
    assert code == 1
    assert {c["metric"] for c in json.loads(output)["regressions"]} == {
        "ttft_seconds",
        "cost_per_million_output_tokens",
    }
    code, output = run(str(old), str(faster), "--json")
    assert code == 0
    better = {c["metric"] for c in json.loads(output)["changes"] if c["verdict"] == "better"}
    assert better == {"ttft_seconds", "max_sustainable_rps", "cost_per_million_output_tokens"}


def test_host_dominated_figures_are_shown_but_never_gate(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(load_seconds=0.4))
    new = write(tmp_path / "new.json", cell(load_seconds=1.2))
    code, output = run(str(old), str(new))
    assert code == 0
    assert "1 worse but not gated" in output


def test_a_cell_whose_status_got_worse_is_a_regression(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell())
    new = write(tmp_path / "new.json", cell(status=CellStatus.failed))
    code, output = run(str(old), str(new))
    assert code == 1
    assert "regression: smollm2-135m/Q4_K_M status" in output


def test_cells_in_one_report_only_are_listed_and_do_not_gate(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(), cell("Q8_0"))
    new = write(tmp_path / "new.json", cell(), cell("Q5_K_M"))
    code, output = run(str(old), str(new), "--json")
    assert code == 0
    document = json.loads(output)
    assert (document["added_cells"], document["removed_cells"]) == (["smollm2-135m/Q5_K_M"], ["smollm2-135m/Q8_0"])
    assert document["regression"] is False


def test_json_and_html_name_the_regression(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(tps=20.0))
    new = write(tmp_path / "new.json", cell(tps=10.0))
    page = tmp_path / "diff.html"
    code, output = run(str(old), str(new), "--json", "--html", str(page))
    assert code == 1
    document = json.loads(output)
    assert document["regressed_cells"] == ["smollm2-135m/Q4_K_M"]
    (regression,) = document["regressions"]
    assert (regression["profile"], regression["metric"], regression["change_percent"]) == (
        "interactive",
        "tokens_per_second",
        -50.0,
    )
    html = page.read_text()
    assert "<strong>Regression</strong>" in html
    assert "tokens_per_second" in html
    assert str(old) in html


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.json", "missing.json does not exist"),
        (lambda d: d, "holds no report.json"),
        (lambda d: (d / "x.json").write_text("{broken") and d / "x.json", "x.json: not JSON"),
        (
            lambda d: (d / "x.json").write_text('{"metadata": {}}') and d / "x.json",
            "not a kubeinfer report (no results list)",
        ),
        (
            lambda d: (d / "x.json").write_text('{"results": [{"model": "m"}]}') and d / "x.json",
            "x.json: not a kubeinfer report (CellResult quantization: Field required)",
        ),
    ],
)
def test_bad_input_exits_2_and_says_why(tmp_path: Path, make: Any, message: str) -> None:
    good = write(tmp_path / "good" / "report.json", cell())
    broken = tmp_path / "broken"
    broken.mkdir()
    bad = make(broken)
    for args in ((str(bad), str(good)), (str(good), str(bad))):
        code, output = run(*args)
        assert code == 2
        assert message in " ".join(output.split())


def test_a_malformed_cluster_source_exits_2(tmp_path: Path) -> None:
    good = write(tmp_path / "report.json", cell())
    code, output = run("cluster:only-a-name", str(good))
    assert code == 2
    assert "'cluster:only-a-name': a cluster report is named cluster:NAMESPACE/NAME" in output


def test_an_unreachable_cluster_exits_2_naming_the_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    server = unreachable_kubeconfig(kubeconfig)
    good = write(tmp_path / "report.json", cell())
    code, output = run("cluster:ns/q", str(good), "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert "cluster:ns/q:" in output
    assert f"cannot reach the Kubernetes API server at {server}" in " ".join(output.split())
    code, output = run("cluster:ns/q", str(good), "--kubeconfig", str(tmp_path / "nope"))
    assert code == 2
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in " ".join(output.split())


def test_a_negative_threshold_is_refused(tmp_path: Path) -> None:
    good = write(tmp_path / "report.json", cell())
    assert run(str(good), str(good), "--threshold", "-1")[0] == 2
    with pytest.raises(ValueError, match="at least 0"):
        diff_reports(as_report_data({"results": []}), as_report_data({"results": []}), -1)


def test_parse_source() -> None:
    assert parse_source("results/q") == Path("results/q")
    cluster = parse_source("cluster:bench/quickstart")
    assert str(cluster) == "cluster:bench/quickstart"
    for bad in ("cluster:", "cluster:/name", "cluster:ns/", "cluster:ns/a/b"):
        with pytest.raises(DiffInputError, match="cluster:NAMESPACE/NAME"):
            parse_source(bad)


def test_directions_agree_with_the_rating_checks() -> None:
    for build in CHECKS.values():
        for check in build(Profiles(), {}):
            assert direction(check.metric) is check.higher_is_better, check.metric
    assert direction("itl_p99_seconds") is False
    assert direction("goodput_rps") is True
    assert direction("runs") is None


def test_one_sided_interval_holding_the_other_value_is_noise() -> None:
    old = as_report_data({"results": [cell(tps=20.0, tps_interval=[12.0, 28.0]).model_dump(mode="json")]})
    new = as_report_data({"results": [cell(tps=14.0).model_dump(mode="json")]})
    (change,) = [c for c in diff_reports(old, new, 5).changes if c.metric == "tokens_per_second"]
    assert change.verdict == "within noise"
    assert not change.regression


def test_output_name_prints_the_regressed_cells_for_scripts(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", cell(tps=20.0), cell("Q8_0", tps=15.0))
    new = write(tmp_path / "new.json", cell(tps=10.0), cell("Q8_0", tps=15.0))
    assert run(str(old), str(new), "-o", "name") == (1, "smollm2-135m/Q4_K_M\n")
    code, output = run(str(old), str(new), "-o", "json")
    assert code == 1
    assert json.loads(output) == json.loads(run(str(old), str(new), "--json")[1])


def test_a_profile_that_errored_is_shown_and_its_cell_status_gates(tmp_path: Path) -> None:
    broken = cell(status=CellStatus.partial)
    broken.profiles["interactive"] = ProfileResult(status="error", reason="server error: 500")
    old = write(tmp_path / "old.json", cell())
    new = write(tmp_path / "new.json", broken)
    code, output = run(str(old), str(new), "--json")
    assert code == 1
    rows = {(c["profile"], c["metric"]): (c["verdict"], c["regression"]) for c in json.loads(output)["changes"]}
    assert rows[(None, "status")] == ("worse", True)
    assert rows[("interactive", "status")] == ("worse", False)


# --- Rate figures with intervals from the level's requests (issue 15) ------------------------------------

RATES = {
    (None, "max_sustainable_rps"),
    (None, "max_sustainable_output_tokens_per_second"),
    (None, "max_sustainable_input_tokens_per_second"),
    ("interactive", "achieved_rps"),
    ("interactive", "output_tokens_per_second"),
    ("interactive", "input_tokens_per_second"),
}


def write_swept(path: Path, times: tuple[float, ...] | list[float]) -> Path:
    return write(path, swept_cell(times))


def rate_verdicts(output: str) -> dict[tuple[str | None, str], str]:
    changes = json.loads(output)["changes"]
    return {(c["profile"], c["metric"]): c["verdict"] for c in changes if (c["profile"], c["metric"]) in RATES}


def test_two_samples_of_one_process_are_within_noise_in_either_order(tmp_path: Path) -> None:
    """The rates differ by 14%, past the 10% threshold, but the levels' intervals overlap."""
    first = write_swept(tmp_path / "a.json", TIMES)
    second = write_swept(tmp_path / "a2.json", TIMES_AGAIN)
    for old, new in ((first, second), (second, first)):
        code, output = run(str(old), str(new), "--json")
        assert code == 0, json.loads(output)["regressions"]
        assert set(rate_verdicts(output).values()) == {"within noise"}
        change = next(c for c in json.loads(output)["changes"] if c["metric"] == "max_sustainable_rps")
        assert abs(change["change_percent"]) > 10
        assert change["old_interval"] is not None
        assert change["new_interval"] is not None


def test_a_rate_60_percent_lower_is_a_throughput_regression(tmp_path: Path) -> None:
    old = write_swept(tmp_path / "a.json", TIMES)
    new = write_swept(tmp_path / "b.json", [t * 2.5 for t in TIMES])
    code, output = run(str(old), str(new), "--json")
    assert code == 1
    document = json.loads(output)
    regressed = {(c["profile"], c["metric"]): c["change_percent"] for c in document["regressions"]}
    assert RATES <= set(regressed)
    assert regressed[(None, "max_sustainable_rps")] == -60.0
    code, output = run(str(old), str(new))
    assert code == 1
    assert "regression: smollm2-135m/Q4_1 max_sustainable_rps" in output


def strip_rate_intervals(path: Path) -> Path:
    """The report as written before the rates had intervals."""
    document = json.loads(path.read_text())
    for result in document["results"]:
        for key in ("rps", "output_tokens_per_second", "input_tokens_per_second"):
            result.pop(f"max_sustainable_{key}_interval")
        metrics = result["profiles"]["interactive"]["metrics"]
        for key in ("achieved_rps", "output_tokens_per_second", "input_tokens_per_second"):
            metrics.pop(f"{key}_interval")
            for level in metrics["levels"]:
                level.pop(f"{key}_interval")
        for key in ("rps", "output_tokens_per_second", "input_tokens_per_second"):
            metrics["sustainable"].pop(f"{key}_interval")
    stripped = path.with_name(f"old-{path.name}")
    stripped.write_text(json.dumps(document))
    return stripped


def test_reports_without_rate_intervals_diff_as_before(tmp_path: Path) -> None:
    first = strip_rate_intervals(write_swept(tmp_path / "a.json", TIMES))
    second = strip_rate_intervals(write_swept(tmp_path / "a2.json", TIMES_AGAIN))
    code, output = run(str(first), str(second), "--json")
    assert code == 1, "no interval: the 14% drop is judged on the values alone"
    assert set(rate_verdicts(output).values()) == {"worse"}
    assert all(c["old_interval"] is None for c in json.loads(output)["changes"] if c["metric"] == "achieved_rps")
    code, output = run(str(second), str(first), "--json")
    assert code == 0
    assert set(rate_verdicts(output).values()) == {"better"}
    # An old report against a new one: only the new side has an interval, and it must hold the old value
    # (1.8182 req/s, outside 1.4204-1.7168), so the drop still counts.
    with_intervals = write_swept(tmp_path / "a2-new.json", TIMES_AGAIN)
    code, output = run(str(first), str(with_intervals), "--json")
    assert code == 1
    assert rate_verdicts(output)[(None, "max_sustainable_rps")] == "worse"


# --- Server timings and latency tails from the level's own requests ---------------------------------------

TAILS = ("ttft_p95_seconds", "e2e_p95_seconds", "itl_p95_seconds")


def one_process(seed: int, requests: int, slower: float = 1.0) -> LevelRun:
    """`requests` requests of one server process at concurrency 4, drawn with `seed`: each its own decode pace
    and prompt time, a queue wait that is mostly short, 47 inter-token gaps around its pace. `slower` scales
    every time (a slower build of the same thing)."""
    rng = random.Random(seed)
    free = [0.0] * 4
    records = []
    for index in range(requests):
        pace = slower * 0.045 * rng.lognormvariate(0, 0.2)
        prompt = slower * 0.4 * rng.lognormvariate(0, 0.3)
        wait = slower * 2.0 * rng.random() ** 2
        gaps = [pace * rng.lognormvariate(0, 0.1) for _ in range(47)]
        e2e = prompt + wait + sum(gaps)
        slot = min(range(4), key=free.__getitem__)
        records.append(
            RequestRecord(
                profile="interactive",
                level="test",
                conversation=index,
                turn=0,
                requested_input_tokens=100,
                requested_output_tokens=48,
                prefixed=False,
                scheduled_seconds=None,
                sent_seconds=free[slot],
                ttft_seconds=prompt + wait,
                e2e_seconds=e2e,
                itl_seconds=gaps,
                input_tokens=100,
                output_tokens=48,
                server_prompt_seconds=prompt,
                server_tokens_per_second=1 / pace,
                queue_wait_seconds=wait,
                tokens_per_second=1 / statistics.fmean(gaps),
                variance_percent=statistics.stdev(gaps) / statistics.fmean(gaps) * 100,
            )
        )
        free[slot] += e2e
    records.sort(key=lambda r: r.sent_seconds)
    return LevelRun(Level("concurrency", 4.0), records)


def changes_of(output: str) -> dict[str, dict[str, Any]]:
    return {c["metric"]: c for c in json.loads(output)["changes"] if c["profile"] == "interactive"}


def test_server_timings_of_two_samples_of_one_process_are_within_noise(tmp_path: Path) -> None:
    """The server's own prompt time and decode rate move 12-22% between two draws of 8 requests: past the
    threshold, inside their Student's t intervals over the requests."""
    first = write(tmp_path / "a.json", cell_of_level(one_process(27, 8)))
    second = write(tmp_path / "a2.json", cell_of_level(one_process(28, 8)))
    for old, new in ((first, second), (second, first)):
        code, output = run(str(old), str(new), "--json")
        assert code == 0, json.loads(output)["regressions"]
        for metric in ("server_ttft_seconds", "server_tokens_per_second"):
            change = changes_of(output)[metric]
            assert abs(change["change_percent"]) > 10
            assert change["verdict"] == "within noise"
            assert change["old_interval"] is not None
            assert change["new_interval"] is not None


def test_a_p95_of_8_requests_is_not_a_regression_and_the_diff_says_why(tmp_path: Path) -> None:
    """No value of 8 lies above the true p95 with 97.5% confidence (0.95^8 = 66%): the interval is open above
    and a 16% move of the p95 between two draws reads as too few samples, not as a regression."""
    first = write(tmp_path / "a.json", cell_of_level(one_process(27, 8)))
    second = write(tmp_path / "a2.json", cell_of_level(one_process(28, 8)))
    code, output = run(str(first), str(second), "--json")
    assert code == 0
    change = changes_of(output)["ttft_p95_seconds"]
    assert change["change_percent"] == pytest.approx(-13.9, abs=0.1)
    assert change["verdict"] == "too few samples"
    assert change["regression"] is False
    assert change["old_interval"][1] is None
    assert change["new_interval"][1] is None
    assert change["note"] == "too few samples: a 95% interval of a p95 needs at least 72 values a side"
    code, output = run(str(second), str(first))
    assert code == 0
    assert "too few samples" in output
    assert "with too few samples to judge" in output
    assert "not judged: smollm2-135m/Q4_1 interactive.ttft_p95_seconds: too few samples" in output
    assert "∞" in output


@pytest.mark.slow
def test_with_100_requests_a_side_a_doubled_p95_is_still_a_regression(tmp_path: Path) -> None:
    base = write(tmp_path / "a.json", cell_of_level(one_process(4, 100)))
    again = write(tmp_path / "a2.json", cell_of_level(one_process(5, 100)))
    doubled = write(tmp_path / "b.json", cell_of_level(one_process(5, 100, slower=2.0)))
    for old, new in ((base, again), (again, base)):
        assert run(str(old), str(new))[0] == 0
    code, output = run(str(base), str(doubled), "--json")
    assert code == 1
    regressed = {c["metric"]: c for c in json.loads(output)["regressions"]}
    for metric in TAILS:
        change = regressed[metric]
        assert change["change_percent"] > 60
        assert None not in change["old_interval"] + change["new_interval"], "100 values bound a p95"
    assert "ttft_p99_seconds" not in regressed, "a p99 needs 368 values: not judged on 100"
    assert changes_of(output)["ttft_p99_seconds"]["verdict"] == "too few samples"


def as_written_before(path: Path) -> Path:
    """The report as written before the server figures had intervals and percentiles had open ends (an open
    end closed at the figure itself: the older intervals stopped at the values seen)."""
    document = json.loads(path.read_text())
    metrics = document["results"][0]["profiles"]["interactive"]["metrics"]
    for scope in (metrics, *metrics["levels"]):
        for key in ("server_ttft_seconds", "server_tokens_per_second"):
            scope.pop(f"{key}_interval")
        for key, interval in scope.items():
            if key.endswith("_seconds_interval") and isinstance(interval, list):
                value = scope[key.removesuffix("_interval")]
                scope[key] = [value if end is None else end for end in interval]
    older = path.with_name(f"old-{path.name}")
    older.write_text(json.dumps(document))
    return older


def test_reports_without_server_intervals_or_open_ends_diff_as_before(tmp_path: Path) -> None:
    first = as_written_before(write(tmp_path / "a.json", cell_of_level(one_process(27, 8))))
    second = as_written_before(write(tmp_path / "a2.json", cell_of_level(one_process(28, 8))))
    code, output = run(str(first), str(second), "--json")
    assert code == 1, "no interval: the server's 13% slower prompt is judged on its value alone"
    changes = changes_of(output)
    assert changes["server_ttft_seconds"]["verdict"] == "worse"
    assert changes["server_ttft_seconds"]["old_interval"] is None
    assert all(c["verdict"] != "too few samples" and c["note"] is None for c in changes.values())
