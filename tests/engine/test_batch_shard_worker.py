"""One shard worker against the real llama-server: recovery after a kill, replicas that die, bounded retries."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.shard_worker import ShardProgress, ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_server import LlamaServer, free_port

pytestmark = pytest.mark.timeout(300)

BATCH = "batch-00000000000000000000shrd"


def _input(path: Path, count: int) -> Path:
    with path.open("w") as handle:
        for i in range(count):
            body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": f"Say {i}"}], "max_tokens": 1}
            handle.write(
                json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions"} | {"body": body})
            )
            handle.write("\n")
    return path


def _pool(*urls: str) -> EndpointPool:
    async def resolve() -> list[str]:
        return list(urls)

    return EndpointPool(resolve)


def _run(layout: BatchLayout, path: Path, pool: EndpointPool, index: int, count: int, **config: Any) -> ShardProgress:
    reports: list[ShardProgress] = []

    async def main() -> ShardProgress:
        try:
            worker = ShardWorker(layout, path, "/v1/chat/completions", pool, WorkerConfig(**config), reports.append)
            return await worker.run(index, count)
        finally:
            await pool.aclose()

    done = asyncio.run(main())
    assert reports[-1].finished
    return done


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_restarted_shard_sends_only_unanswered_requests_and_cuts_a_torn_line(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    path = _input(tmp_path / "in.jsonl", 12)
    layout = BatchLayout(tmp_path / "data", BATCH)
    output, _ = layout.logs(1)
    earlier = {"id": "batch_req_earlier", "custom_id": "c7", "response": {"status_code": 200, "body": {}}}
    output.append(earlier)
    output.close()
    with output.path.open("ab") as handle:  # the previous pod was killed mid-write
        handle.write(b'{"id": "batch_req_torn", "custom_id": "c8", "resp')

    done = _run(layout, path, _pool(llama_server.base_url), index=1, count=2)

    lines = _lines(output.path)
    ids = [x["custom_id"] for x in lines]
    assert len(ids) == 6
    assert set(ids) == {f"c{i}" for i in range(6, 12)}  # shard 1 of 2 is c6..c11
    assert lines[0] == earlier  # kept, not answered again
    assert (done.completed, done.failed, done.total) == (6, 0, 6)
    assert all(x["response"]["status_code"] == 200 for x in lines[1:])


def test_dead_replica_is_avoided_and_every_request_still_answered(llama_server: LlamaServer, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    path = _input(tmp_path / "in.jsonl", 8)
    layout = BatchLayout(tmp_path / "data", BATCH)
    done = _run(layout, path, _pool(dead, llama_server.base_url), index=0, count=1, backoff_seconds=0.05)
    assert (done.completed, done.failed) == (8, 0)
    assert len(_lines(layout.logs(0)[0].path)) == 8


def test_retries_are_bounded_and_the_request_lands_in_the_error_file(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    path = _input(tmp_path / "in.jsonl", 3)
    layout = BatchLayout(tmp_path / "data", BATCH)
    done = _run(layout, path, _pool(dead), index=0, count=1, max_attempts=3, backoff_seconds=0.01, concurrency=3)
    assert (done.completed, done.failed) == (0, 3)
    errors = _lines(layout.logs(0)[1].path)
    assert sorted(x["custom_id"] for x in errors) == ["c0", "c1", "c2"]
    assert all(x["error"]["code"] == "engine_unavailable" for x in errors)
    assert all("gave up after 3 attempts" in x["error"]["message"] for x in errors)
