"""The one batch engine where no request reaches a model: expiry, a stop before the first request, and the
embedded gateway resuming a batch from the logs it wrote before it ran its batches through the shard worker."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from kubeinfer.batch import pool
from kubeinfer.batch.engine import EngineClient
from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.runner import BatchRunner
from kubeinfer.batch.shard_worker import ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.storage.blobs import LocalBlobStore
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, now

BATCH = "batch-00000000000000000000wrkr"
CHAT = "/v1/chat/completions"


def _input(path: Path, count: int) -> Path:
    with path.open("w") as handle:
        for i in range(count):
            body = {"model": "m", "messages": [{"role": "user", "content": f"Say {i}"}], "max_tokens": 1}
            handle.write(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": CHAT, "body": body}) + "\n")
    return path


def _answer(custom_id: str) -> dict[str, Any]:
    body = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    return {"id": "batch_req_x", "custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}


def _closed_port_pool() -> EndpointPool:
    """A replica nobody listens on: any request sent would fail, so the counts show that none was."""
    url = f"http://127.0.0.1:{free_port()}"

    async def resolve() -> list[str]:
        return [url]

    return EndpointPool(resolve)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _run(worker: ShardWorker) -> None:
    async def main() -> None:
        try:
            await worker.run(0, 1)
        finally:
            await worker.pool.aclose()

    asyncio.run(main())


def _expired_total() -> float:
    return REGISTRY.get_sample_value("kubeinfer_batch_requests_total", {"status": "expired"}) or 0.0


def test_requests_not_sent_before_the_batch_expires_get_batch_expired_lines(tmp_path: Path) -> None:
    path = _input(tmp_path / "in.jsonl", 4)
    layout = BatchLayout(tmp_path / "data", BATCH)
    output, errors = layout.logs(0)
    output.append(_answer("c2"))
    output.close()
    before = _expired_total()
    worker = ShardWorker(layout, path, CHAT, _closed_port_pool(), WorkerConfig(), expires_at=time.time() - 1)

    _run(worker)

    assert worker.stopped == "expired"
    assert worker.progress is not None
    assert (worker.progress.completed, worker.progress.failed, worker.progress.total) == (1, 3, 4)
    expired = _lines(errors.path)
    assert sorted(x["custom_id"] for x in expired) == ["c0", "c1", "c3"]  # c2 was answered before
    assert {x["error"]["code"] for x in expired} == {"batch_expired"}
    assert expired[0]["error"]["message"] == "This request could not be executed before the batch expired."
    assert _lines(output.path) == [_answer("c2")]
    assert _expired_total() - before == 3


def test_a_stopped_worker_sends_nothing_and_counts_what_its_logs_hold(tmp_path: Path) -> None:
    path = _input(tmp_path / "in.jsonl", 3)
    layout = BatchLayout(tmp_path / "data", BATCH)
    output, errors = layout.logs(0)
    output.append(_answer("c0"))
    output.close()
    worker = ShardWorker(layout, path, CHAT, _closed_port_pool(), WorkerConfig(max_attempts=1))
    worker.stop()

    _run(worker)

    assert worker.stopped == "cancelled"
    assert worker.progress is not None
    assert (worker.progress.completed, worker.progress.failed) == (1, 0)
    assert (worker.progress.prompt_tokens, worker.progress.completion_tokens) == (7, 3)
    assert worker.busy.total() == 0
    assert not errors.path.exists()  # nothing was sent, so nothing failed


def test_gateway_resumes_a_cancel_from_logs_written_before_the_shared_worker(tmp_path: Path) -> None:
    """A gateway upgraded while a batch was cancelling publishes the lines its predecessor wrote, once."""
    meta = MetadataStore(tmp_path / "gateway.db")
    blobs = LocalBlobStore(tmp_path / "files")
    _input(blobs.local_path("file-input"), 3)
    meta.add_file(FileRecord("file-input", "p", "in.jsonl", "batch", 1, "x"))
    started = now()
    rec = BatchRecord(BATCH, "p", CHAT, "file-input", "24h", status="cancelling", in_progress_at=started, total=3)
    meta.add_batch(rec)
    legacy = tmp_path / "work" / BATCH / "output.jsonl"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("".join(json.dumps(_answer(c)) + "\n" for c in ("c0", "c2")))
    engine = EngineClient(f"http://127.0.0.1:{free_port()}")

    async def main() -> None:
        try:
            await BatchRunner(meta, blobs, pool.single(engine), tmp_path, lambda: {"m"}).run(BATCH)
        finally:
            await engine.aclose()

    asyncio.run(main())

    done = meta.get_batch(BATCH)
    assert done is not None
    assert (done.status, done.completed, done.failed) == ("cancelled", 2, 0)
    assert (done.prompt_tokens, done.completion_tokens) == (14, 6)
    assert done.output_file_id == f"file-output-{BATCH.removeprefix('batch-')}"
    assert done.error_file_id is None
    published = _lines(blobs.local_path(done.output_file_id))
    assert [x["custom_id"] for x in published] == ["c0", "c2"]
    assert not (tmp_path / "work" / BATCH).exists()
    meta.close()
