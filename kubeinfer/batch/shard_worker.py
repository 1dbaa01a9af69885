"""Execute batch requests: the one engine of both gateway modes.

A cluster batch runs one shard per worker pod against all model replicas; the embedded gateway runs its
batch as shard 0 of 1 against a pool of its one llama-server (kubeinfer.batch.runner). Either way the
requests of the shard are grouped by prompt prefix, sent with bounded retries and back-off (each attempt
under the engine client's deadline), and answered by one line in the shard's result logs
(kubeinfer.batch.checkpoint), which are its checkpoint: a worker killed at any moment is replaced by one
that recovers the logs, cuts a torn last line and sends only requests without a line. An exclusive lock
on the shard keeps a replacement from writing while its predecessor is still alive. A worker can be told
to stop dispatching (a cancel) and, given the batch's expiry, writes `batch_expired` lines for what it
could not send in time.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from kubeinfer.batch.checkpoint import ResultLog
from kubeinfer.batch.engine import EngineReply, TransientEngineError
from kubeinfer.batch.lines import error_line, missing_line, reply_line
from kubeinfer.batch.observation_log import ObservationLog, observation_log_path
from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.schedule import prefix_key
from kubeinfer.batch.shards import BatchLayout, Shard, count_requests, plan, shard_offsets
from kubeinfer.metrics import batch as metrics
from kubeinfer.metrics import vllm
from kubeinfer.metrics.observations import RequestObservation, contributions
from kubeinfer.metrics.shard_state import ShardMetrics
from kubeinfer.metrics.usage import usage_of

log = logging.getLogger(__name__)


@dataclass
class ShardProgress:
    """What the operator aggregates into the BatchJob's `requestCounts` and `usage`, and exports as metrics.

    `metrics` is the shard's cumulative series (kubeinfer.metrics.shard_state), rebuilt from its observation
    log by a replacement worker; `in_flight` the requests at the engine now.
    """

    index: int
    total: int
    completed: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False
    in_flight: int = 0
    metrics: ShardMetrics = field(default_factory=ShardMetrics)

    def snapshot(self) -> ShardProgress:
        """A copy to report from another thread while the running shard goes on counting."""
        return replace(self, metrics=self.metrics.copy())

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finished": self.finished,
            "in_flight": self.in_flight,
            "metrics": self.metrics.as_json(),
        }


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


class BusyClock:
    """Wall time during which at least one request is at the engine: the batch's inference time."""

    def __init__(self) -> None:
        self.inflight = 0
        self.since = 0.0
        self.seconds = 0.0

    def enter(self) -> None:
        if self.inflight == 0:
            self.since = time.monotonic()
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.seconds += time.monotonic() - self.since

    def total(self) -> float:
        """Busy seconds so far, counting the interval still open."""
        return self.seconds + (time.monotonic() - self.since if self.inflight else 0.0)


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


@asynccontextmanager
async def shard_lock(path: Path) -> AsyncIterator[None]:
    """Exclusive across processes sharing the volume; released by the kernel when a holder dies.

    Waited for in a thread: the embedded gateway's event loop keeps serving while a predecessor holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ShardWorker:
    """Send the unanswered requests of one shard and write one result line for each; see the module docstring.

    `expires_at` (unix time): requests not sent by then get a `batch_expired` error line instead. While it
    runs, `progress` holds the shard's counts, `busy` its inference time and `heartbeat` the unix time a
    request last started or finished: what the embedded gateway shows live and saves.
    """

    def __init__(
        self,
        layout: BatchLayout,
        input_path: Path,
        endpoint: str,
        pool: EndpointPool,
        config: WorkerConfig | None = None,
        report: Callable[[ShardProgress], None] | None = None,
        expires_at: float | None = None,
    ) -> None:
        self.layout = layout
        self.input_path = input_path
        self.endpoint = endpoint
        self.pool = pool
        self.config = config or WorkerConfig()
        self.report = report or (lambda _: None)
        self.expires_at = expires_at
        self.progress: ShardProgress | None = None
        self.busy = BusyClock()
        self.heartbeat = time.time()
        #: Why dispatching ended before the last request: "cancelled" (`stop`) or "expired"; else None.
        self.stopped: str | None = None
        self._stop_requested = False
        self.observations: ObservationLog  # the running shard's, opened by `run`

    def stop(self) -> None:
        """Send no further request; the ones at the engine finish and keep their lines (a cancel)."""
        self._stop_requested = True

    async def run(self, index: int, count: int) -> ShardProgress:
        shard = plan(await asyncio.to_thread(count_requests, self.input_path), count, index)
        async with shard_lock(self.layout.lock(index)):
            output, errors = self.layout.logs(index)
            self.observations = ObservationLog(observation_log_path(self.layout.work, index))
            try:
                return await self._run(shard, output, errors)
            finally:
                output.close()
                errors.close()
                self.observations.close()

    async def _pending(self, shard: Shard, done: set[str]) -> list[int]:
        """Byte offsets of the shard's unanswered requests, in the order they are sent."""
        offsets = await asyncio.to_thread(shard_offsets, self.input_path, shard, done)
        if not self.config.group_prefixes:
            offsets.sort()  # byte offsets in file order are the input's order
        elif shard.count > 1:  # one worker alone has no peers to keep in step with: first appearance is kept
            offsets = await asyncio.to_thread(groups_in_key_order, self.input_path, offsets)
        return offsets

    async def _run(self, shard: Shard, output: ResultLog, errors: ResultLog) -> ShardProgress:
        out_state, err_state = await asyncio.to_thread(output.recover), await asyncio.to_thread(errors.recover)
        if out_state.truncated_bytes or err_state.truncated_bytes:
            log.warning("cut torn result line", extra={"shard": shard.index})
        done = out_state.done | err_state.done
        progress = self.progress = ShardProgress(
            shard.index,
            shard.size,
            out_state.lines,
            err_state.lines,
            out_state.prompt_tokens,
            out_state.completion_tokens,
            metrics=await asyncio.to_thread(self.observations.recover, done),
        )
        offsets = await self._pending(shard, done)
        del out_state, err_state
        concurrency = self.config.concurrency
        if not concurrency:
            slots = await self.pool.slots()
            concurrency = max(1, math.ceil(slots * self.config.slot_multiple / shard.count))
        log.info(
            "shard running",
            extra={
                "shard": shard.index,
                "pending": len(offsets),
                "done": progress.completed + progress.failed,
                "concurrency": concurrency,
            },
        )
        self.report(progress)
        semaphore = asyncio.Semaphore(concurrency)
        reporter = asyncio.create_task(self._report_every(progress))
        try:
            with self.input_path.open("rb") as source:
                async with asyncio.TaskGroup() as group:
                    for position, offset in enumerate(offsets):
                        await semaphore.acquire()
                        self.stopped = self._stop_reason()
                        if self.stopped is not None:
                            semaphore.release()
                            offsets = offsets[position:]
                            break
                        source.seek(offset)
                        raw = source.readline()
                        group.create_task(self._one(raw, output, errors, progress, semaphore))
                if self.stopped == "expired":
                    expired = await asyncio.to_thread(self._expire, source, offsets, errors)
                    for observation in expired:
                        _count(observation, progress)
        finally:
            reporter.cancel()
        progress.finished = True
        self.report(progress)
        return progress

    def _stop_reason(self) -> str | None:
        if self._stop_requested:
            return "cancelled"
        if self.expires_at is not None and time.time() >= self.expires_at:
            return "expired"
        return None

    async def _report_every(self, progress: ShardProgress) -> None:
        while True:
            await asyncio.sleep(self.config.progress_seconds)
            await asyncio.to_thread(self.report, progress.snapshot())

    async def _send(self, body: dict[str, Any]) -> tuple[EngineReply | None, str, int]:
        """The engine's reply (None when every attempt failed transiently), the last failure, the retries."""
        failure = ""
        for attempt in range(self.config.max_attempts):
            if attempt:
                metrics.RETRIES.inc()
            try:
                return await self.pool.post(self.endpoint, body), "", attempt
            except TransientEngineError as exc:
                failure = str(exc)
                if attempt + 1 < self.config.max_attempts:
                    delay = min(self.config.backoff_max_seconds, self.config.backoff_seconds * 2**attempt)
                    await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
        return None, failure, self.config.max_attempts - 1

    async def _one(
        self, raw: bytes, output: ResultLog, errors: ResultLog, progress: ShardProgress, semaphore: asyncio.Semaphore
    ) -> None:
        try:
            request = json.loads(raw)
            custom_id = str(request["custom_id"])
            # a batch answer is one JSON body; a streamed one could not be stored as such
            body = {k: v for k, v in request["body"].items() if k not in ("stream", "stream_options")}
            model = str(body.get("model", ""))
            self.busy.enter()
            self.heartbeat = time.time()
            metrics.REQUESTS_IN_FLIGHT.inc()
            running = vllm.running(model)
            running.inc()
            progress.in_flight += 1
            sent = time.monotonic()
            try:
                reply, failure, retries = await self._send(body)
            finally:
                self.busy.leave()
                metrics.REQUESTS_IN_FLIGHT.dec()
                running.dec()
                progress.in_flight -= 1
                elapsed = time.monotonic() - sent
            if reply is None:
                message = f"gave up after {self.config.max_attempts} attempts: {failure}"
                line, log_ = error_line(custom_id, "engine_unavailable", message), errors
                observation = RequestObservation("failed", elapsed, retries, model)
            elif reply.status_code == 200:
                line, log_ = reply_line(custom_id, reply), output
                observation = RequestObservation(
                    "completed",
                    elapsed,
                    retries,
                    model,
                    usage_of(reply.body),
                    vllm.timings_of(reply.body),
                    vllm.finish_reason_of(reply.body),
                )
            else:
                line, log_ = reply_line(custom_id, reply), errors
                observation = RequestObservation("failed", elapsed, retries, model)
            await asyncio.to_thread(self._write, custom_id, observation, log_, line)
            _count(observation, progress)
        finally:
            semaphore.release()
            self.heartbeat = time.time()

    def _write(self, custom_id: str, observation: RequestObservation, log_: ResultLog, line: dict[str, Any]) -> None:
        """The observation first, then the result line (kubeinfer.batch.observation_log says why)."""
        self.observations.append(custom_id, observation)
        log_.append(line)

    def _expire(self, source: BinaryIO, offsets: list[int], errors: ResultLog) -> list[RequestObservation]:
        """A `batch_expired` line for each request at `offsets`: the batch's window closed before they were sent.

        Runs in a thread; the caller counts what it returns in the event loop, where the progress is counted.
        """
        expired = []
        for offset in offsets:
            source.seek(offset)
            custom_id = str(json.loads(source.readline())["custom_id"])
            observation = RequestObservation("expired")
            self._write(custom_id, observation, errors, missing_line(custom_id, "batch_expired"))
            expired.append(observation)
        return expired


def _count(observation: RequestObservation, progress: ShardProgress) -> None:
    """A request whose lines are written: into the shard's counts and state, and this process's registry.

    Only ever in the event loop: reports from other threads read a `snapshot`.
    """
    if observation.status == "completed":
        progress.completed += 1
        if observation.usage is not None:
            progress.prompt_tokens += observation.usage.prompt
            progress.completion_tokens += observation.usage.completion
    else:
        progress.failed += 1
    progress.metrics.add_all(contributions(observation))
    metrics.record(observation)
