"""`kubeinfer bench diff` on real runs: the same manifest twice (no regression), then `engine.parallel: 1`.

Issue 15's done-when, measured: `bench diff` of two runs of the same manifest reports no regression (exit 0)
in either order, and of a run with `engine.parallel` cut to 1 reports the throughput drop (exit 1, a
throughput metric among the regressions). Whether it does depends on the machine's noise during the runs,
not on code alone: a busy host can move a figure past the threshold and outside its interval, or hide a drop
inside wide intervals. So this is a benchmark that records the verdicts next to the figures behind them, not
a test that asserts them; it exits 0 whatever the verdicts are and prints a line when one is not the
expected one.

It runs `kubeinfer bench run` three times on the manifest docs/benchmarks.md measured by hand (SmolLM2 135M
Q4_1, the interactive profile alone, a sweep over concurrency 1 and 4, 2 threads): A with
`engine.parallel: 4`, A again, and B with `engine.parallel: 1`; then `bench diff -o json` of A and A2, of A2
and A (the same pair the other way round: a rate that rose from A to A2 fell from A2 to A), and of A and B.
Each run takes a minute or two on 2 cores; five minutes in all on a quiet machine.

Run: `python -m perf.bench_diff_scenarios --out results/bench/bench-diff-scenarios.json` (repository root,
after `make setup`: the runs need the built llama-server and the cached model).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

MANIFEST: dict[str, Any] = {
    "apiVersion": "kubeinfer.dev/v1alpha1",
    "kind": "BenchmarkMatrix",
    "metadata": {"name": "bench-diff-scenarios"},
    "spec": {
        "models": [{"name": "smollm2-135m", "size": "135M", "files": {"Q4_1": "pypi:smollm2-135m"}}],
        "engine": {"ctxSize": 4096, "threads": 2, "parallel": 4},
        "profiles": {
            "interactive": {"maxTokens": 48, "runs": 4, "sweep": {"concurrency": [1, 4], "requestsPerLevel": 8}},
            "longContext": {"enabled": False},
            "batch": {"enabled": False},
            "quality": {"enabled": False},
            "stress": {"enabled": False},
        },
    },
}
RUN_TIMEOUT_SECONDS = 1800
CLI = [sys.executable, "-m", "kubeinfer.cli.main"]


class RunFailed(Exception):
    """A `kubeinfer bench run` that did not finish: no figure to report."""


def is_throughput(metric: str) -> bool:
    """Rates (tokens/s, requests/s): the figures `engine.parallel` moves."""
    return metric.endswith("_per_second") or metric.endswith("_rps")


def with_parallel(manifest: dict[str, Any], parallel: int) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["spec"]["engine"]["parallel"] = parallel
    return changed


def bench_run(manifest: dict[str, Any], work: Path, label: str) -> tuple[Path, float]:
    path = work / f"{label}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    out_dir = work / label
    print(f"bench run {label} (engine.parallel {manifest['spec']['engine']['parallel']}) ...", flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, "bench", "run", str(path), "--out-dir", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0 or not (out_dir / "report.json").is_file():
        raise RunFailed(f"bench run {label} exited {done.returncode}:\n{(done.stderr or done.stdout)[-3000:]}")
    print(f"  {seconds:.0f} s", flush=True)
    return out_dir, seconds


def bench_diff(old: Path, new: Path, expect_regression: bool) -> dict[str, Any]:
    done = subprocess.run(
        [*CLI, "bench", "diff", str(old), str(new), "-o", "json"], capture_output=True, text=True, check=False
    )
    result: dict[str, Any] = {"exit_code": done.returncode, "expected_exit_code": 1 if expect_regression else 0}
    if done.returncode not in (0, 1):
        result.update(error=done.stderr.strip()[-2000:], ok=False)
        return result
    document = json.loads(done.stdout)
    changes = document["changes"]
    regressions = document["regressions"]
    throughput_regressions = [c["metric"] for c in regressions if is_throughput(c["metric"])]
    verdicts = [c["verdict"] for c in changes]
    result.update(
        regressions=[_figure(c) for c in regressions],
        counts={v: verdicts.count(v) for v in sorted(set(verdicts))},
        throughput=[_figure(c) for c in changes if is_throughput(c["metric"])],
        throughput_regressions=throughput_regressions,
    )
    if expect_regression:
        result["ok"] = done.returncode == 1 and bool(throughput_regressions)
    else:
        result["ok"] = done.returncode == 0
    return result


def _figure(change: dict[str, Any]) -> dict[str, Any]:
    keys = ("cell", "profile", "metric", "old", "new", "old_interval", "new_interval", "change_percent", "verdict")
    return {key: change[key] for key in keys}


def _with_interval(value: Any, interval: list[float] | None) -> str:
    return f"{value} [{interval[0]}, {interval[1]}]" if interval else str(value)


def print_summary(name: str, diff: dict[str, Any]) -> None:
    wanted = "no regression, exit 0" if diff["expected_exit_code"] == 0 else "a throughput regression, exit 1"
    print(f"{name}: exit {diff['exit_code']}, expected {wanted}: {'as expected' if diff['ok'] else 'UNEXPECTED'}")
    if "error" in diff:
        print(f"  error: {diff['error']}")
        return
    print(f"  verdicts: {diff['counts']}")
    for figure in diff["throughput"]:
        where = f"{figure['profile']}.{figure['metric']}" if figure["profile"] else figure["metric"]
        old, new = (
            _with_interval(figure["old"], figure["old_interval"]),
            _with_interval(figure["new"], figure["new_interval"]),
        )
        print(f"  {where}: {old} -> {new} ({figure['change_percent']}%, {figure['verdict']})")
    for figure in diff["regressions"]:
        print(f"  regression: {figure['profile'] or 'cell'}.{figure['metric']} {figure['change_percent']}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/bench-diff-scenarios.json"))
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "bench-diff-scenarios",
        "manifest": MANIFEST,
        "changed_for_b": {"spec.engine.parallel": 1},
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kubeinfer-bench-diff-") as tmp:
        work = Path(tmp)
        try:
            run_a, seconds_a = bench_run(MANIFEST, work, "a")
            run_a2, seconds_a2 = bench_run(MANIFEST, work, "a2")
            run_b, seconds_b = bench_run(with_parallel(MANIFEST, 1), work, "b-parallel-1")
        except (RunFailed, subprocess.TimeoutExpired) as error:
            print(error, file=sys.stderr)
            return 2
        result["run_seconds"] = {"a": round(seconds_a, 1), "a2": round(seconds_a2, 1), "b": round(seconds_b, 1)}
        result["same_manifest"] = bench_diff(run_a, run_a2, expect_regression=False)
        result["same_manifest_reversed"] = bench_diff(run_a2, run_a, expect_regression=False)
        result["parallel_1"] = bench_diff(run_a, run_b, expect_regression=True)
    result["ok"] = all(result[name]["ok"] for name in ("same_manifest", "same_manifest_reversed", "parallel_1"))
    result["total_seconds"] = round(time.monotonic() - started, 1)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary("same manifest (A vs A2)", result["same_manifest"])
    print_summary("same manifest reversed (A2 vs A)", result["same_manifest_reversed"])
    print_summary("engine.parallel 1 (A vs B)", result["parallel_1"])
    print(f"runs {result['run_seconds']} s, {result['total_seconds']} s in all; load {result['load_average_after']}")
    if not result["ok"]:
        print("UNEXPECTED verdict (a measured figure, not a failure: see the JSON for the changes behind it)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
