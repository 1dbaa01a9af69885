"""Run one shard of a cluster batch: the unanswered requests of its line range, against all model replicas.

The shard's result logs (kubeinfer.batch.checkpoint) are its checkpoint: a worker killed at any moment is
replaced by one that recovers the logs, cuts a torn last line and sends only requests without a line. An
exclusive lock on the shard keeps a replacement from writing while its predecessor is still alive.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubeinfer.batch.checkpoint import ResultLog
from kubeinfer.batch.engine import EngineReply, TransientEngineError
from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.schedule import prefix_key
from kubeinfer.batch.shards import BatchLayout, Shard, count_requests, plan, shard_offsets
from kubeinfer.metrics import batch as metrics
from kubeinfer.metrics.usage import usage_of

log = logging.getLogger(__name__)


@dataclass
class ShardProgress:
    """What the operator aggregates into the BatchJob's `requestCounts` and `usage`."""

    index: int
    total: int
    completed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkerConfig:
    #: Requests in flight from this worker; 0 = 2 x (slots of all replicas) / workers.
    concurrency: int = 0
    slot_multiple: int = 2
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 10.0
    progress_seconds: float = 2.0
    #: Send requests sharing a prompt prefix back to back (stable order inside a group); off: input order.
    group_prefixes: bool = True


def error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def reply_line(custom_id: str, reply: EngineReply) -> dict[str, Any]:
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {
            "status_code": reply.status_code,
            "request_id": reply.request_id or f"req_{secrets.token_hex(12)}",
            "body": reply.body,
        },
        "error": None,
    }


def groups_in_key_order(path: Path, offsets: list[int]) -> list[int]:
    """The prefix groups of `offsets` ordered by their key, input order kept inside each group.

    Every worker of a batch then sends the same system prompt at about the same time, and prefix routing
    sends it to the same replica, instead of each worker mixing a different prompt into every replica's
    slots (which evicts the cached prefixes of the others).
    """
    keys: dict[int, str] = {}
    with path.open("rb") as source:
        for offset in offsets:
            source.seek(offset)
            request = json.loads(source.readline())
            keys[offset] = prefix_key(request.get("body") if isinstance(request, dict) else None)
    return sorted(offsets, key=keys.__getitem__)


@contextmanager
def shard_lock(path: Path) -> Iterator[None]:
    """Exclusive across processes sharing the volume; released by the kernel when a holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ShardWorker:
    def __init__(
        self,
        layout: BatchLayout,
        input_path: Path,
        endpoint: str,
        pool: EndpointPool,
        config: WorkerConfig | None = None,
        report: Callable[[ShardProgress], None] | None = None,
    ) -> None:
        self.layout = layout
        self.input_path = input_path
        self.endpoint = endpoint
        self.pool = pool
        self.config = config or WorkerConfig()
        self.report = report or (lambda _: None)

    async def run(self, index: int, count: int) -> ShardProgress:
        shard = plan(await asyncio.to_thread(count_requests, self.input_path), count, index)
        with shard_lock(self.layout.lock(index)):
            output, errors = self.layout.logs(index)
            try:
                return await self._run(shard, output, errors)
            finally:
                output.close()
                errors.close()

    async def _run(self, shard: Shard, output: ResultLog, errors: ResultLog) -> ShardProgress:
        out_state, err_state = output.recover(), errors.recover()
        progress = ShardProgress(
            shard.index,
            shard.size,
            out_state.lines,
            err_state.lines,
            out_state.prompt_tokens,
            out_state.completion_tokens,
        )
        offsets = await asyncio.to_thread(shard_offsets, self.input_path, shard, out_state.done | err_state.done)
        if self.config.group_prefixes:
            offsets = await asyncio.to_thread(groups_in_key_order, self.input_path, offsets)
        else:
            offsets.sort()  # byte offsets in file order are the input's order
        concurrency = self.config.concurrency
        if not concurrency:
            slots = await self.pool.slots()
            concurrency = max(1, math.ceil(slots * self.config.slot_multiple / shard.count))
        log.info(
            "shard running",
            extra={"shard": shard.index, "pending": len(offsets), "done": progress.completed + progress.failed},
        )
        self.report(progress)
        semaphore = asyncio.Semaphore(concurrency)
        reporter = asyncio.create_task(self._report_every(progress))
        try:
            with self.input_path.open("rb") as source:
                async with asyncio.TaskGroup() as group:
                    for offset in offsets:
                        await semaphore.acquire()
                        source.seek(offset)
                        raw = source.readline()
                        group.create_task(self._one(raw, output, errors, progress, semaphore))
        finally:
            reporter.cancel()
        progress.finished = True
        self.report(progress)
        return progress

    async def _report_every(self, progress: ShardProgress) -> None:
        while True:
            await asyncio.sleep(self.config.progress_seconds)
            await asyncio.to_thread(self.report, progress)

    async def _send(self, body: dict[str, Any]) -> tuple[EngineReply | None, str]:
        failure = ""
        for attempt in range(self.config.max_attempts):
            if attempt:
                metrics.RETRIES.inc()
            try:
                return await self.pool.post(self.endpoint, body), ""
            except TransientEngineError as exc:
                failure = str(exc)
                if attempt + 1 < self.config.max_attempts:
                    delay = min(self.config.backoff_max_seconds, self.config.backoff_seconds * 2**attempt)
                    await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
        return None, failure

    async def _one(
        self, raw: bytes, output: ResultLog, errors: ResultLog, progress: ShardProgress, semaphore: asyncio.Semaphore
    ) -> None:
        try:
            request = json.loads(raw)
            custom_id = str(request["custom_id"])
            body = {k: v for k, v in request["body"].items() if k not in ("stream", "stream_options")}
            metrics.REQUESTS_IN_FLIGHT.inc()
            sent = time.monotonic()
            try:
                reply, failure = await self._send(body)
            finally:
                metrics.REQUESTS_IN_FLIGHT.dec()
                metrics.REQUEST_DURATION.observe(time.monotonic() - sent)
            if reply is None:
                message = f"gave up after {self.config.max_attempts} attempts: {failure}"
                await asyncio.to_thread(errors.append, error_line(custom_id, "engine_unavailable", message))
                progress.failed += 1
                metrics.REQUESTS.labels("failed").inc()
            elif reply.status_code == 200:
                await asyncio.to_thread(output.append, reply_line(custom_id, reply))
                progress.completed += 1
                metrics.REQUESTS.labels("completed").inc()
                usage = usage_of(reply.body)
                metrics.record_tokens(usage)
                if usage is not None:
                    progress.prompt_tokens += usage.prompt
                    progress.completion_tokens += usage.completion
            else:
                await asyncio.to_thread(errors.append, reply_line(custom_id, reply))
                progress.failed += 1
                metrics.REQUESTS.labels("failed").inc()
        finally:
            semaphore.release()
