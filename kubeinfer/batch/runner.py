"""One batch of the embedded gateway from validation to its files; its requests run as shard 0 of 1.

The requests themselves are sent by the same worker as a cluster batch's (kubeinfer.batch.shard_worker),
over a pool of the gateway's one engine, so retries, the request deadline, prefix grouping, result lines
and the checkpoint are the same code in both modes. This module adds what only the embedded gateway has:
validation, the batch record, cancel, expiry and publishing the result logs as files.

The runner is the only writer of a batch record while the batch runs; the API asks it to cancel
instead of editing the record, so progress saves never overwrite a user's cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.shard_worker import ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.batch.validation import validate_input
from kubeinfer.metrics import batch as metrics
from kubeinfer.storage.blobs import BlobStore, hash_file
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, now

log = logging.getLogger(__name__)

#: The embedded gateway's worker settings: results saved every second, the gateway's default attempts.
EMBEDDED = WorkerConfig(max_attempts=4, progress_seconds=1.0)


class BatchRunner:
    def __init__(
        self,
        meta: MetadataStore,
        blobs: BlobStore,
        pool: EndpointPool,
        data_dir: Path,
        known_models: Callable[[], Collection[str]],
        config: WorkerConfig = EMBEDDED,
    ) -> None:
        """`data_dir`: the gateway's data directory; a running batch's logs live in `work/<batch>/`."""
        self.meta = meta
        self.blobs = blobs
        self.pool = pool
        self.data_dir = data_dir
        self.known_models = known_models
        self.config = config
        self._current: BatchRecord | None = None
        self._worker: ShardWorker | None = None
        #: Inference seconds of the running batch before this process resumed it.
        self._base_seconds = 0.0
        self._started = 0.0

    @property
    def current(self) -> BatchRecord | None:
        """The running batch, with its counts as of now (ahead of the last progress save)."""
        rec = self._current
        if rec is not None:
            self._sync(rec)
        return rec

    @property
    def last_progress(self) -> float | None:
        """Unix time the running batch last started or finished a request: its heartbeat."""
        if self._current is None:
            return None
        return self._worker.heartbeat if self._worker is not None else self._started

    def request_cancel(self) -> BatchRecord | None:
        """Mark the running batch as cancelling; the worker sends no further request."""
        rec = self.current
        if rec is not None and rec.status in ("validating", "in_progress"):
            rec.status, rec.cancelling_at = "cancelling", now()
            self.meta.save_batch(rec)
            if self._worker is not None:
                self._worker.stop()
        return rec

    async def run(self, batch_id: str) -> None:
        rec = self.meta.get_batch(batch_id)
        if rec is None or rec.terminal:
            return
        self._current = rec
        self._started = time.time()
        metrics.RUNNING.set(1)
        try:
            await asyncio.to_thread(_adopt_unsharded_logs, self._layout(rec))
            if rec.status == "validating":
                await self._validate(rec)
            if rec.status in ("in_progress", "cancelling"):
                await self._execute(rec)
            if rec.status in ("finalizing", "cancelling"):
                await self._finalize(rec)
        finally:
            self.meta.save_batch(rec)
            self._current = None
            metrics.RUNNING.set(0)
            metrics.record_progress(0, 0)
            if rec.terminal:
                metrics.BATCHES.labels(rec.status).inc()

    def _layout(self, rec: BatchRecord) -> BatchLayout:
        return BatchLayout(self.data_dir, rec.id)

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

    async def _execute(self, rec: BatchRecord) -> None:
        """Send every unanswered request (none once cancelling: the logs are only recovered and counted)."""
        input_path = await asyncio.to_thread(self.blobs.local_path, rec.input_file_id)
        worker = ShardWorker(self._layout(rec), input_path, rec.endpoint, self.pool, self.config, None, rec.expires_at)
        if rec.status != "in_progress":
            worker.stop()
        self._worker, self._base_seconds = worker, rec.inference_seconds
        saver = asyncio.create_task(self._save_every(rec))
        try:
            await worker.run(0, 1)
        finally:
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver
            self._sync(rec)
            self._worker = None
        if worker.stopped == "expired" and rec.status == "in_progress":
            rec.status, rec.expired_at = "expired", now()
            await asyncio.to_thread(self._publish, rec)
        elif rec.status == "in_progress":
            rec.status, rec.finalizing_at = "finalizing", now()
            self.meta.save_batch(rec)

    def _sync(self, rec: BatchRecord) -> None:
        """Copy the worker's counts and inference time into the record."""
        worker = self._worker
        progress = worker.progress if worker is not None else None
        if worker is None or progress is None:  # not running, or still reading its logs back
            return
        rec.completed, rec.failed = progress.completed, progress.failed
        rec.prompt_tokens, rec.completion_tokens = progress.prompt_tokens, progress.completion_tokens
        rec.inference_seconds = self._base_seconds + worker.busy.total()
        metrics.record_progress(rec.completed + rec.failed, rec.total)

    async def _save_every(self, rec: BatchRecord) -> None:
        """Progress saves on the event loop, between the API's own edits (a cancel), never across them."""
        while True:
            await asyncio.sleep(self.config.progress_seconds)
            self._sync(rec)
            self.meta.save_batch(rec)

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
        layout = self._layout(rec)
        suffix = rec.id.removeprefix("batch-")
        for kind, result_log in zip(("output", "errors"), layout.logs(0), strict=True):
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
        shutil.rmtree(layout.work, ignore_errors=True)
        log.info("batch files published", extra={"batch_id": rec.id, "completed": rec.completed, "failed": rec.failed})


def _adopt_unsharded_logs(layout: BatchLayout) -> None:
    """Give the logs of a batch begun by a gateway before the shared worker (`output.jsonl`, `errors.jsonl`)
    the names of shard 0, so an upgrade mid-batch resumes it instead of sending its requests again."""
    for old, log_ in zip(("output.jsonl", "errors.jsonl"), layout.logs(0), strict=True):
        legacy = layout.work / old
        if legacy.exists() and not log_.path.exists():
            legacy.rename(log_.path)
