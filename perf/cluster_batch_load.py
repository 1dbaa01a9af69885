"""Cluster batch load: 10,000 chat requests through 2 workers and 2 model replicas, every one answered once.

The load run that used to sit in the test suite (16 of its 40 minutes on 2 cores); the suite keeps a
400-request exactly-once test and the fault test (tests/cluster/test_batch_cluster.py). Starts its own kind
cluster (testbed/kind.py, `bench_cluster`: the tests' cluster without the chart), then the suite's setup
(testbed/batch_env.py: the operator under its RBAC, a ModelInstall with 2 llama-server replicas, a gateway in
cluster mode), submits one BatchJob of tiny requests (1 generated token each) and checks what the suite
checks: completed, both workers ran, one output line per custom_id in input order, no error lines, usage equal
to the sum of the lines', both replicas answered. Writes the timings as JSON.

Run: `python -m perf.cluster_batch_load --out results/bench/cluster-batch-load.json` (repository root).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kubeinfer.settings import Settings
from testbed.batch_env import (
    TERMINAL,
    Env,
    assert_exactly_once,
    batch_env,
    lines_of,
    requests_file,
    submit,
    worker_pods,
)
from testbed.kind import bench_cluster
from testbed.wait import wait_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000, help="requests of the batch")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds the batch may take before the run fails")
    parser.add_argument("--out", type=Path, default=Path("results/bench/cluster-batch-load.json"))
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="kubeinfer-batch-load-") as tmp:
        work = Path(tmp)
        with (
            bench_cluster("kubeinfer-batch-load", work, 30083, settings.models_root) as (cluster, models, data),
            batch_env(cluster, models, work / "env", data) as env,
        ):
            result = measure(env, args.requests, args.timeout, work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


def predicted_tokens(endpoint: str) -> float:
    for line in httpx.get(f"{endpoint}/metrics", timeout=10).text.splitlines():
        if line.startswith("llamacpp:tokens_predicted_total"):
            return float(line.split()[-1])
    raise RuntimeError(f"no llamacpp:tokens_predicted_total in {endpoint}/metrics")


def measure(env: Env, count: int, timeout: float, work: Path) -> dict[str, Any]:
    before = {e: predicted_tokens(e) for e in env.endpoints}
    path = requests_file(work / "in.jsonl", count)
    expected = [f"req-{i}" for i in range(count)]
    started = time.monotonic()
    batch = submit(env, path)
    client = env.client()
    workers: set[str] = set()

    def finished() -> Any:
        for pod in worker_pods(env, batch.id):
            workers.add(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        current = client.batches.retrieve(batch.id)
        return current if current.status in TERMINAL else None

    done = wait_for(finished, timeout=timeout, interval=3, what=f"the {count}-request batch")
    wall = time.monotonic() - started
    counts = done.request_counts
    if done.status != "completed" or counts is None or counts.completed != count:
        raise RuntimeError(f"the batch did not complete every request: {done}")
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    if errors or len(output) != count:
        raise RuntimeError(f"{len(output)} output and {len(errors)} error lines for {count} requests")
    assert_exactly_once(output, errors, expected)
    usage = sum(line["response"]["body"]["usage"]["completion_tokens"] for line in output)
    if done.usage is None or done.usage.output_tokens != usage:
        raise RuntimeError(f"batch usage {done.usage} differs from the lines' {usage} completion tokens")
    after = {e: predicted_tokens(e) for e in env.endpoints}
    if not all(after[e] > before[e] for e in env.endpoints):
        raise RuntimeError(f"a replica answered nothing: {before} -> {after}")
    running = (done.finalizing_at or 0) - (done.in_progress_at or 0)
    return {
        "benchmark": "cluster_batch_load",
        "model": "smollm2-135m Q4_1",
        "replicas": len(env.endpoints),
        "workers": sorted(workers),
        "requests": count,
        "max_tokens": 1,
        "exactly_once": True,
        "submit_to_completed_seconds": round(wall, 3),
        "requests_per_second_submit_to_completed": round(count / wall, 3),
        "in_progress_to_finalizing_seconds": running,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }


if __name__ == "__main__":
    sys.exit(main())
