"""Cluster batch throughput with 2 model replicas / 2 x the saturated throughput of one of those replicas.

Starts its own kind cluster (testbed/kind.py, `bench_cluster`: the tests' cluster without the chart), then the
same setup as tests/cluster/test_batch_cluster.py: the operator under its RBAC, a ModelInstall with 2 llama-server
replicas, a gateway in cluster mode. In one run it drives one replica directly (closed loop at slots and
2 x slots, best kept; the requests in the order a batch worker sends them, grouped by shared prefix, and once
in file order for the record), submits the same kind of requests as one BatchJob with 2 workers through the gateway,
and drives the replica directly once more; the higher direct figure is the denominator. The batch's rate is
the rate at which its answers completed: (requests - 1) over the span between the first and the last answer's
`created` stamp (the engines' own clock, whole seconds); the direct figure is the closed loop's rate over its
whole run, which its ramp-up and tail make a little lower than a between-answers rate (a few requests of 200). Two
slower rates are reported beside it: over `in_progress_at` to `finalizing_at` (worker pod start-up and the
operator's polling included) and over the whole submit-to-completed wall time (validation and merge pods too).
Target: ratio >= 0.9. On a 2-core machine the two replicas share the same two cores, so the ratio
measures the CPU they share as much as the system; compare figures from one run only. To split the two, the run
also drives both replicas directly at once (each its own closed loop at the best concurrency, the same requests
each), after the batch: their joint rate, all answers over the span from the first start to the last end, is
what two replicas give on this machine with no batch path in front of them, and `ratio_to_two_replicas_direct`
is the batch's share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from kubeinfer.settings import Settings
from perf.gateway_throughput import drive_direct, gateway_order, requests
from testbed.batch_env import Env, batch_env
from testbed.kind import bench_cluster

TERMINAL = ("completed", "failed", "expired", "cancelled")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1200, help="requests of the cluster batch")
    parser.add_argument("--direct-requests", type=int, default=200, help="requests per direct measurement")
    parser.add_argument(
        "--max-tokens", type=int, default=32, help="tokens per answer: enough that the engines, not HTTP, set the pace"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench/cluster-batch-throughput.json"))
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="kubeinfer-batch-bench-") as tmp:
        work = Path(tmp)
        with (
            bench_cluster("kubeinfer-batch-bench", work, 30082, settings.models_root) as (cluster, models, data),
            batch_env(cluster, models, work / "env", data) as env,
        ):
            args.work = work
            result = measure(env, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


def measure(env: Env, args: argparse.Namespace) -> dict[str, object]:
    replica = env.endpoints[0]
    slots = 4
    naive_lines = requests(args.direct_requests, args.max_tokens)
    direct_lines = grouped(naive_lines, args.work)
    asyncio.run(drive_direct(replica, direct_lines[:16], slots))  # warm-up
    sweep = [{"concurrency": c, **asyncio.run(drive_direct(replica, direct_lines, c))} for c in (slots, 2 * slots)]
    best = max(sweep, key=lambda r: float(r["requests_per_second"]))
    naive = asyncio.run(drive_direct(replica, naive_lines, int(best["concurrency"])))

    client = env.client()
    lines = requests(args.requests, args.max_tokens)
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
    started = time.monotonic()
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    while batch.status not in TERMINAL:
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    wall = time.monotonic() - started
    counts = batch.request_counts
    if batch.status != "completed" or counts is None or counts.completed != len(lines):
        raise RuntimeError(f"batch did not complete cleanly: {batch}")
    assert batch.in_progress_at is not None
    assert batch.finalizing_at is not None
    assert batch.output_file_id is not None
    running = max(1, batch.finalizing_at - batch.in_progress_at)
    output = client.files.content(batch.output_file_id).text.splitlines()
    stamps = [json.loads(line)["response"]["body"]["created"] for line in output]
    answering = max(1, max(stamps) - min(stamps))

    again = asyncio.run(drive_direct(replica, direct_lines, int(best["concurrency"])))
    both = asyncio.run(drive_replicas(env.endpoints[:2], direct_lines, int(best["concurrency"])))
    # The direct closed loop's rate over its whole run (drive_direct's clock): its ramp-up and tail are a few
    # requests of 200, so it reads a little under the between-answers rate the batch side uses.
    single = max(float(best["requests_per_second"]), float(again["requests_per_second"]))
    cluster_rate = (len(lines) - 1) / answering
    lifecycle_rate = len(lines) / running
    return {
        "benchmark": "cluster_batch_throughput",
        "model": "smollm2-135m Q4_1",
        "replicas": 2,
        "workers": 2,
        "server_parallel": slots,
        "requests": len(lines),
        "max_tokens": args.max_tokens,
        "direct_order": "grouped by shared prefix, as a batch worker sends them (gateway_order)",
        "direct_sweep": sweep,
        "direct_repeat": again,
        "direct_file_order": naive,
        "single_server_saturated_requests_per_second": single,
        "cluster": {
            "answering_seconds": answering,
            "requests_per_second": round(cluster_rate, 3),
            "in_progress_to_finalizing_seconds": running,
            "requests_per_second_in_progress_to_finalizing": round(lifecycle_rate, 3),
            "submit_to_completed_seconds": round(wall, 3),
            "requests_per_second_submit_to_completed": round(len(lines) / wall, 3),
        },
        "two_replicas_direct": both,
        "two_replicas_over_one": round(float(both["requests_per_second"]) / single, 4),
        "ratio_to_two_replicas_direct": round(cluster_rate / float(both["requests_per_second"]), 4),
        "ratio": round(cluster_rate / (2 * single), 4),
        "ratio_in_progress_to_finalizing": round(lifecycle_rate / (2 * single), 4),
        "target": 0.9,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }


async def drive_replicas(endpoints: list[str], lines: list[dict[str, object]], concurrency: int) -> dict[str, object]:
    """Each replica driven directly at once, the same requests each; the joint rate is every answer over the
    span from the first loop's start to the last one's end (a loop that ends early does not inflate it)."""
    started = time.monotonic()
    runs = await asyncio.gather(*(drive_direct(endpoint, lines, concurrency) for endpoint in endpoints))
    span = time.monotonic() - started
    return {
        "replicas": len(endpoints),
        "concurrency_each": concurrency,
        "per_replica": list(runs),
        "seconds": round(span, 3),
        "requests_per_second": round(len(endpoints) * len(lines) / span, 3),
    }


def grouped(lines: list[dict[str, object]], work: Path) -> list[dict[str, object]]:
    """The requests in the order a batch worker sends them (grouped by shared prefix), so that the direct
    client gets the same prompt-cache hits as the batch: file order would measure prefix grouping instead."""
    path = work / "direct.jsonl"
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    return gateway_order(path, lines)


if __name__ == "__main__":
    sys.exit(main())
