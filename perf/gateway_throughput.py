"""Batch throughput through the gateway / saturated throughput of the same llama-server driven directly.

Same requests, same server, same run: the direct driver sweeps a few concurrencies around the slot
count and keeps the best; the gateway then runs the identical requests as one batch (its own process,
as in production); the direct best is measured once more afterwards and the higher direct figure is
the denominator, so drift on a shared machine counts against the gateway, never for it.
Target: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from kubeinfer.engines.llamacpp_build import build
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig, free_port
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings

MODEL = "smollm2-135m"
SYSTEMS = ["Answer in one short sentence.", "You are a terse math tutor.", "Reply like a pirate, briefly."]


def requests(n: int, max_tokens: int) -> list[dict[str, Any]]:
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


async def drive_direct(base_url: str, lines: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Closed loop: `concurrency` workers each send the next request as soon as the last one returns."""
    queue = list(reversed(lines))
    tokens = 0
    answered: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        while queue:
            line = queue.pop()
            response = await client.post("/v1/chat/completions", json=line["body"])
            response.raise_for_status()
            answered.append(time.monotonic())
            tokens += response.json()["usage"]["completion_tokens"]

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.monotonic() - started
    return {
        "concurrency": concurrency,
        "seconds": round(wall, 3),
        "requests_per_second": round(len(lines) / wall, 3),
        # the rate between the first and the last answer, comparable to a batch's rate from its answers' stamps
        "requests_per_second_between_answers": round((len(answered) - 1) / max(1e-9, max(answered) - min(answered)), 3),
        "completion_tokens": tokens,
    }


def drive_gateway(engine_url: str, lines: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    port = free_port()
    log = (work / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubeinfer.gateway",
            "--port",
            str(port),
            "--model",
            MODEL,
            "--engine-url",
            engine_url,
            "--data-dir",
            str(work / "gateway"),
            "--insecure-no-auth",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gateway did not start; see " + str(work / "gateway.log"))
            time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        file = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="batch")
        started = time.monotonic()
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        while batch.status not in ("completed", "failed", "cancelled", "expired"):
            time.sleep(0.05)
            batch = client.batches.retrieve(batch.id)
        wall = time.monotonic() - started
        if batch.status != "completed" or batch.request_counts is None or batch.request_counts.completed != len(lines):
            raise RuntimeError(f"batch did not complete cleanly: {batch}")
        stats = httpx.get(f"http://127.0.0.1:{port}/v1/jobs/history", params={"limit": 1}).json()["jobs"][0]
        return {
            "seconds": round(wall, 3),
            "requests_per_second": round(len(lines) / wall, 3),
            "completion_tokens": batch.usage.output_tokens if batch.usage else None,
            "inference_seconds": stats["inference_seconds"],
            "request_throughput_over_inference_time": stats["request_throughput"],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/gateway-throughput.json"))
    args = parser.parse_args()

    settings = Settings()
    install = build(settings.engines_root, log=lambda m: print(m, file=sys.stderr))
    resolver = ModelResolver(ModelCache(settings.models_root), install.llama_quantize)
    model = resolver.resolve(MODEL, "Q4_1", {"Q4_1": f"pypi:{MODEL}"})
    lines = requests(args.requests, args.max_tokens)
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
            asyncio.run(drive_direct(server.base_url, lines[:16], args.parallel))  # warm-up
            sweep = [
                asyncio.run(drive_direct(server.base_url, lines, c))
                for c in sorted({args.parallel, args.parallel + 1, 2 * args.parallel})
            ]
            best = max(sweep, key=lambda r: r["requests_per_second"])
            gateway = drive_gateway(server.base_url, lines, work)
            again = asyncio.run(drive_direct(server.base_url, lines, best["concurrency"]))
    saturated = max(best["requests_per_second"], again["requests_per_second"])
    result = {
        "benchmark": "gateway_batch_throughput",
        "model": f"{MODEL} Q4_1",
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "server_parallel": args.parallel,
        "direct_sweep": sweep,
        "direct_repeat": again,
        "direct_saturated_requests_per_second": saturated,
        "gateway": gateway,
        "ratio": round(gateway["requests_per_second"] / saturated, 4),
        "target": 0.95,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
