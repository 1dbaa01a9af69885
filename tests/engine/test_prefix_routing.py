"""Prefix-aware routing against two real llama-server replicas: cache hits stay on one replica, failover is clean."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.routing import prefix_key
from kubeinfer.batch.shard_worker import ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_build import EngineInstall
from testbed.replicas import MODEL, llama_replicas, metric

pytestmark = pytest.mark.timeout(300)

SYSTEM = " ".join(f"Rule {i}: answer politely, briefly and only about topic number {i}." for i in range(20))
PREDICTED = "llamacpp:tokens_predicted_total"


def _chat(i: int, system: str = SYSTEM) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"What is {i} plus {i}?"}],
        "max_tokens": 2,
        "temperature": 0,
    }


def _pool(*urls: str) -> EndpointPool:
    async def resolve() -> list[str]:
        return list(urls)

    return EndpointPool(resolve)


def test_requests_sharing_a_system_prompt_land_on_one_replica_and_hit_its_cache(
    engine_install: EngineInstall, smollm2_gguf: Path, tmp_path: Path
) -> None:
    with llama_replicas(engine_install.llama_server, smollm2_gguf, tmp_path, parallel=2, ctx_size=2048) as servers:
        by_url = {s.base_url: s for s in servers}
        before = {url: metric(s, PREDICTED) for url, s in by_url.items()}

        async def main() -> tuple[list[Any], EndpointPool]:
            pool = _pool(*by_url)
            try:
                return [(await pool.post("/v1/chat/completions", _chat(i))).body for i in range(6)], pool
            finally:
                await pool.aclose()

        bodies, pool = asyncio.run(main())
        owner = pool.affinity.get(prefix_key(_chat(0)))
        assert owner in by_url
        other = next(url for url in by_url if url != owner)
        assert all(body["choices"][0]["message"]["content"] is not None for body in bodies)
        timings = [body["timings"] for body in bodies]  # this llama.cpp build reports cache_n and prompt_n
        assert timings[0]["prompt_n"] > 200
        assert all(t["cache_n"] > 200 for t in timings[1:]), timings  # the system prompt came from the cache
        assert all(t["prompt_n"] < 30 for t in timings[1:]), timings  # only the user turn was evaluated
        assert metric(by_url[owner], PREDICTED) > before[owner]
        assert metric(by_url[other], PREDICTED) == before[other]  # the other replica saw none of them


@pytest.mark.slow
def test_killing_the_replica_of_a_prefix_moves_its_requests_to_the_other_without_a_failure(
    engine_install: EngineInstall, smollm2_gguf: Path, tmp_path: Path
) -> None:
    count = 24  # the kill lands after 8 answers, so 16 are left for the other replica
    path = tmp_path / "in.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            line = {"custom_id": f"k{i}", "method": "POST", "url": "/v1/chat/completions", "body": _chat(i)}
            handle.write(json.dumps(line) + "\n")
    layout = BatchLayout(tmp_path / "data", "batch-00000000000000000000kill")
    output = layout.logs(0)[0].path

    with llama_replicas(engine_install.llama_server, smollm2_gguf, tmp_path, parallel=2, ctx_size=2048) as servers:
        by_url = {s.base_url: s for s in servers}
        pool = _pool(*by_url)
        owner = pool.choose(list(by_url), _chat(0))  # rendezvous: where the prefix goes first
        other = next(url for url in by_url if url != owner)

        async def main() -> tuple[int, int, float]:
            worker = ShardWorker(
                layout, path, "/v1/chat/completions", pool, WorkerConfig(concurrency=3, backoff_seconds=0.05)
            )
            task = asyncio.create_task(worker.run(0, 1))
            while not output.exists() or len(output.read_text().splitlines()) < 8:
                assert not task.done(), task
                await asyncio.sleep(0.05)
            untouched = await asyncio.to_thread(metric, by_url[other], PREDICTED)
            process = by_url[owner].proc
            assert process is not None
            process.send_signal(signal.SIGKILL)
            process.wait()
            try:
                done = await task
            finally:
                await pool.aclose()
            return done.completed, done.failed, untouched

        completed, failed, untouched = asyncio.run(main())
        assert untouched == 0  # 3 in flight stay within the owner's fair share plus slack
        assert (completed, failed) == (count, 0)
        lines = [json.loads(x) for x in output.read_text().splitlines()]
        assert sorted(x["custom_id"] for x in lines) == sorted(f"k{i}" for i in range(count))
        assert all(x["response"]["status_code"] == 200 for x in lines)
        assert metric(by_url[other], PREDICTED) > 0
        assert pool.affinity.get(prefix_key(_chat(0))) == other
