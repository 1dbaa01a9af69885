"""Execute one batch against the engine: validate, stream requests, checkpoint, finalize.

The runner is the only writer of a batch record while the batch runs; the API asks it to cancel
instead of editing the record, so progress saves never overwrite a user's cancel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeinfer.batch.checkpoint import ResultLog
from kubeinfer.batch.engine import EngineClient, TransientEngineError
from kubeinfer.batch.schedule import pending_offsets
from kubeinfer.batch.validation import validate_input
from kubeinfer.metrics import batch as metrics
from kubeinfer.metrics.usage import usage_of
from kubeinfer.storage.blobs import BlobStore, hash_file
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, now

log = logging.getLogger(__name__)


@dataclass
class RunnerConfig:
    #: Requests in flight at once; 0 means `slot_multiple` times the engine's parallel slots.
    concurrency: int = 0
    #: One request waiting at the engine per busy slot, so a freed slot starts its next request at once
    #: instead of idling for a gateway round trip (measured: 2x slots is the direct driver's optimum too).
    slot_multiple: int = 2
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 10.0
    progress_interval_seconds: float = 1.0


class _Busy:
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


class BatchRunner:
    def __init__(
        self,
        meta: MetadataStore,
        blobs: BlobStore,
        engine: EngineClient,
        work_root: Path,
        known_models: Callable[[], Collection[str]],
        config: RunnerConfig | None = None,
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self.engine = engine
        self.work_root = work_root
        self.known_models = known_models
        self.config = config or RunnerConfig()
        self.current: BatchRecord | None = None
        #: Unix time the running batch last started or finished a request: its heartbeat.
        self.last_progress: float | None = None

    def request_cancel(self) -> BatchRecord | None:
        """Mark the running batch as cancelling; the dispatch loop stops at its next request."""
        rec = self.current
        if rec is not None and rec.status in ("validating", "in_progress"):
            rec.status, rec.cancelling_at = "cancelling", now()
            self.meta.save_batch(rec)
        return rec

    async def run(self, batch_id: str) -> None:
        rec = self.meta.get_batch(batch_id)
        if rec is None or rec.terminal:
            return
        self.current = rec
        self.last_progress = time.time()
        metrics.RUNNING.set(1)
        try:
            if rec.status == "validating":
                await self._validate(rec)
            if rec.status in ("in_progress", "cancelling"):
                await self._execute(rec)
            if rec.status in ("finalizing", "cancelling"):
                await self._finalize(rec)
        finally:
            self.meta.save_batch(rec)
            self.current = None
            metrics.RUNNING.set(0)
            metrics.record_progress(0, 0)
            if rec.terminal:
                metrics.BATCHES.labels(rec.status).inc()

    async def _validate(self, rec: BatchRecord) -> None:
        input_file = self.meta.get_file(rec.input_file_id)
        if input_file is None:
            self._fail(
                rec,
                [
                    {
                        "code": "file_not_found",
                        "message": f"input file {rec.input_file_id} was deleted",
                        "param": "input_file_id",
                        "line": None,
                    }
                ],
            )
            return
        path = await asyncio.to_thread(self.blobs.local_path, input_file.id)  # S3: a download
        report = await asyncio.to_thread(validate_input, path, rec.endpoint, set(self.known_models()))
        if rec.status == "cancelling":  # cancelled while validating
            return
        if not report.ok:
            self._fail(rec, report.errors)
            return
        rec.total, rec.model = report.total, report.model
        rec.status, rec.in_progress_at = "in_progress", now()
        self.meta.save_batch(rec)
        log.info("batch validated", extra={"batch_id": rec.id, "requests": rec.total, "model": rec.model})

    def _fail(self, rec: BatchRecord, errors: list[dict[str, Any]]) -> None:
        rec.errors = errors
        rec.status, rec.failed_at = "failed", now()
        self.meta.save_batch(rec)
        log.info("batch failed validation", extra={"batch_id": rec.id, "errors": len(errors)})

    def _logs(self, rec: BatchRecord) -> tuple[ResultLog, ResultLog]:
        work = self.work_root / rec.id
        return ResultLog(work / "output.jsonl"), ResultLog(work / "errors.jsonl")

    async def _execute(self, rec: BatchRecord) -> None:
        output, errors = self._logs(rec)
        out_state, err_state = output.recover(), errors.recover()
        rec.completed, rec.failed = out_state.lines, err_state.lines
        rec.prompt_tokens, rec.completion_tokens = out_state.prompt_tokens, out_state.completion_tokens
        if out_state.truncated_bytes or err_state.truncated_bytes:
            log.warning("cut torn result line", extra={"batch_id": rec.id})
        input_path = await asyncio.to_thread(self.blobs.local_path, rec.input_file_id)
        done = out_state.done | err_state.done
        offsets = await asyncio.to_thread(pending_offsets, input_path, done)
        del done
        concurrency = self.config.concurrency or await self.engine.slots() * self.config.slot_multiple
        log.info("batch running", extra={"batch_id": rec.id, "pending": len(offsets), "concurrency": concurrency})
        busy = _Busy()
        base_seconds = rec.inference_seconds
        last_save = time.monotonic()
        semaphore = asyncio.Semaphore(concurrency)
        stopped_at: int | None = None
        try:
            with input_path.open("rb") as source:
                async with asyncio.TaskGroup() as group:
                    for index, offset in enumerate(offsets):
                        await semaphore.acquire()
                        if rec.status != "in_progress" or self._expired(rec):
                            semaphore.release()
                            stopped_at = index
                            break
                        source.seek(offset)
                        raw = source.readline()
                        group.create_task(self._one(rec, raw, output, errors, busy, semaphore))
                        if time.monotonic() - last_save > self.config.progress_interval_seconds:
                            rec.inference_seconds = base_seconds + busy.total()
                            self.meta.save_batch(rec)
                            last_save = time.monotonic()
                if stopped_at is not None and rec.status == "in_progress":  # expired
                    for offset in offsets[stopped_at:]:
                        source.seek(offset)
                        custom_id = _custom_id(source.readline())
                        errors.append(
                            _error_line(
                                custom_id,
                                "batch_expired",
                                "This request could not be executed before the batch expired.",
                            )
                        )
                        rec.failed += 1
                        metrics.REQUESTS.labels("expired").inc()
                    rec.status, rec.expired_at = "expired", now()
        finally:
            rec.inference_seconds = base_seconds + busy.total()
            output.close()
            errors.close()
        if rec.status == "in_progress":
            rec.status, rec.finalizing_at = "finalizing", now()
            self.meta.save_batch(rec)
        elif rec.status == "expired":
            self._publish(rec)

    def _expired(self, rec: BatchRecord) -> bool:
        return rec.expires_at is not None and time.time() >= rec.expires_at

    async def _one(
        self,
        rec: BatchRecord,
        raw: bytes,
        output: ResultLog,
        errors: ResultLog,
        busy: _Busy,
        semaphore: asyncio.Semaphore,
    ) -> None:
        try:
            request = _loads(raw)
            custom_id = request["custom_id"]
            # a batch answer is one JSON body; a streamed one could not be stored as such
            body = {k: v for k, v in request["body"].items() if k not in ("stream", "stream_options")}
            reply = None
            failure = ""
            busy.enter()
            metrics.REQUESTS_IN_FLIGHT.inc()
            sent = time.monotonic()
            try:
                for attempt in range(self.config.max_attempts):
                    if attempt:
                        metrics.RETRIES.inc()
                    try:
                        reply = await self.engine.post(rec.endpoint, body)
                        break
                    except TransientEngineError as exc:
                        failure = str(exc)
                        if attempt + 1 < self.config.max_attempts:
                            delay = min(self.config.backoff_max_seconds, self.config.backoff_seconds * 2**attempt)
                            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
            finally:
                busy.leave()
                metrics.REQUESTS_IN_FLIGHT.dec()
                metrics.REQUEST_DURATION.observe(time.monotonic() - sent)
            if reply is None:
                line = _error_line(
                    custom_id, "engine_unavailable", f"gave up after {self.config.max_attempts} attempts: {failure}"
                )
                await asyncio.to_thread(errors.append, line)
                rec.failed += 1
                metrics.REQUESTS.labels("failed").inc()
                return
            line = {
                "id": f"batch_req_{secrets.token_hex(12)}",
                "custom_id": custom_id,
                "response": {
                    "status_code": reply.status_code,
                    "request_id": reply.request_id or f"req_{secrets.token_hex(12)}",
                    "body": reply.body,
                },
                "error": None,
            }
            if reply.status_code == 200:
                await asyncio.to_thread(output.append, line)
                rec.completed += 1
                metrics.REQUESTS.labels("completed").inc()
                usage = reply.body.get("usage") if isinstance(reply.body, dict) else None
                if isinstance(usage, dict):
                    rec.prompt_tokens += int(usage.get("prompt_tokens", 0))
                    rec.completion_tokens += int(usage.get("completion_tokens", 0))
                metrics.record_tokens(usage_of(reply.body))
            else:
                await asyncio.to_thread(errors.append, line)
                rec.failed += 1
                metrics.REQUESTS.labels("failed").inc()
        finally:
            semaphore.release()
            self.last_progress = time.time()
            metrics.record_progress(rec.completed + rec.failed, rec.total)

    async def _finalize(self, rec: BatchRecord) -> None:
        """Publish the logs as files, then take the final status; idempotent, so a crash here is finished by the
        next start. Publishing runs off the event loop (an S3 store uploads); meanwhile readers see the batch
        still `finalizing` or `cancelling`, never final without its files.
        """
        await asyncio.to_thread(self._publish, rec)
        if rec.status == "finalizing":
            rec.status, rec.completed_at = "completed", now()
        else:
            rec.status, rec.cancelled_at = "cancelled", now()
        self.meta.save_batch(rec)
        log.info("batch finished", extra={"batch_id": rec.id, "status": rec.status})

    def _publish(self, rec: BatchRecord) -> None:
        output, errors = self._logs(rec)
        suffix = rec.id.removeprefix("batch-")
        for kind, result_log in (("output", output), ("errors", errors)):
            key = f"file-{kind}-{suffix}"
            if result_log.path.exists():
                if result_log.path.stat().st_size == 0:
                    continue
                blob = self.blobs.adopt(key, result_log.path)
                size, sha = blob.bytes, blob.sha256
            elif self.blobs.local_path(key).exists():
                size, sha = hash_file(self.blobs.local_path(key))
            else:
                continue
            if self.meta.get_file(key) is None:
                filename = f"{rec.id}_{kind}.jsonl"
                self.meta.add_file(FileRecord(key, rec.project, filename, "batch_output", size, sha))
            if kind == "output":
                rec.output_file_id = key
            else:
                rec.error_file_id = key
        self.meta.save_batch(rec)
        shutil.rmtree(self.work_root / rec.id, ignore_errors=True)
        log.info("batch files published", extra={"batch_id": rec.id, "completed": rec.completed, "failed": rec.failed})


def _loads(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value


def _custom_id(raw: bytes) -> str:
    return str(_loads(raw)["custom_id"])


def _error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
