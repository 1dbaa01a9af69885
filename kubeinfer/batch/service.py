"""The batches of a gateway behind one protocol, and the embedded gateway's queue that implements it.

`BatchBackend` is what the API and the console ask of batches; the embedded queue here and the cluster's
BatchJobs (kubeinfer.gateway.cluster_batches) both answer it. Embedded, batches run one at a time because
they share one engine whose slots a single batch already fills; on start the loop re-queues every batch a
previous process left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any, Protocol

from kubeinfer.batch.runner import BatchRunner
from kubeinfer.batch.validation import SUPPORTED_ENDPOINTS
from kubeinfer.metrics import batch as metrics
from kubeinfer.storage.files import FileNotFound
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, new_id, now

log = logging.getLogger(__name__)

COMPLETION_WINDOWS = {"24h": 24 * 3600}


class BatchNotFound(LookupError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"No such Batch object: {batch_id}")


class InvalidBatchRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def check_batch_request(
    meta: MetadataStore,
    project: str,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    endpoints: Collection[str],
) -> FileRecord:
    """The checks `POST /v1/batches` makes before accepting a batch; returns the input file's record."""
    if endpoint not in endpoints:
        raise InvalidBatchRequest(f"endpoint must be one of {', '.join(endpoints)}, got '{endpoint}'", "endpoint")
    if completion_window not in COMPLETION_WINDOWS:
        raise InvalidBatchRequest(
            f"completion_window must be one of {', '.join(COMPLETION_WINDOWS)}", "completion_window"
        )
    input_file = meta.get_file(input_file_id, project)
    if input_file is None:
        raise FileNotFound(input_file_id)
    if input_file.purpose != "batch":
        raise InvalidBatchRequest(
            f"file {input_file_id} has purpose '{input_file.purpose}', not 'batch'", "input_file_id"
        )
    return input_file


class BatchBackend(Protocol):
    """The calls behind `/v1/batches`, `/v1/jobs` and the console's batch pages, in either gateway mode."""

    async def create(
        self,
        project: str,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRecord: ...

    async def get(self, project: str, batch_id: str) -> BatchRecord: ...

    async def page(self, project: str, limit: int, after: str | None) -> list[BatchRecord]:
        """Newest first; `after` is the last id of the previous page."""
        ...

    async def cancel(self, project: str, batch_id: str) -> BatchRecord: ...

    async def all_records(self, project: str, limit: int, status: str | None) -> list[BatchRecord]:
        """Newest first, optionally of one status."""
        ...

    async def unfinished_readers(self, project: str, file_id: str) -> list[str]:
        """Ids of the project's batches, not yet finished, whose input is `file_id` (it must not be deleted)."""
        ...


class BatchService:
    """The embedded gateway's `BatchBackend`: a queue on the event loop, run by one `BatchRunner`."""

    def __init__(self, meta: MetadataStore, runner: BatchRunner) -> None:
        self.meta = meta
        self.runner = runner
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for rec in self.meta.unfinished_batches():
            log.info("resuming batch", extra={"batch_id": rec.id, "status": rec.status})
            self._queue.put_nowait(rec.id)
        self._task = asyncio.create_task(self._loop(), name="batch-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            batch_id = await self._queue.get()
            try:
                await self.runner.run(batch_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one broken batch must not stop the queue
                log.exception("batch crashed", extra={"batch_id": batch_id})
                rec = self.meta.get_batch(batch_id)
                if rec is not None and not rec.terminal:
                    rec.errors = [
                        {
                            "code": "internal_error",
                            "message": f"{type(exc).__name__}: {exc}",
                            "param": None,
                            "line": None,
                        }
                    ]
                    rec.status, rec.failed_at = "failed", now()
                    self.meta.save_batch(rec)
                    metrics.BATCHES.labels("failed").inc()

    async def create(
        self,
        project: str,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRecord:
        check_batch_request(self.meta, project, input_file_id, endpoint, completion_window, SUPPORTED_ENDPOINTS)
        created = now()
        rec = BatchRecord(
            id=new_id("batch"),
            project=project,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            created_at=created,
            expires_at=created + COMPLETION_WINDOWS[completion_window],
            metadata=metadata,
        )
        self.meta.add_batch(rec)
        self._queue.put_nowait(rec.id)
        log.info("batch created", extra={"batch_id": rec.id, "project": project})
        return rec

    async def get(self, project: str, batch_id: str) -> BatchRecord:
        running = self.runner.current
        if running is not None and running.id == batch_id and running.project == project:
            return running  # live counts, ahead of the last progress save
        rec = self.meta.get_batch(batch_id, project)
        if rec is None:
            raise BatchNotFound(batch_id)
        return rec

    async def page(self, project: str, limit: int, after: str | None) -> list[BatchRecord]:
        records = self.meta.list_batches(project, limit, after)
        running = self.runner.current
        return [running if running is not None and r.id == running.id else r for r in records]

    async def cancel(self, project: str, batch_id: str) -> BatchRecord:
        rec = await self.get(project, batch_id)
        if rec.terminal or rec.status in ("cancelling", "finalizing"):
            if rec.status in ("completed", "failed", "expired"):
                raise InvalidBatchRequest(f"Batch {batch_id} is {rec.status} and cannot be cancelled")
            return rec
        if self.runner.current is rec:
            cancelled = self.runner.request_cancel()
            assert cancelled is not None
            return cancelled
        stamp = now()
        if rec.in_progress_at is not None:  # queued after a restart with partial output: the runner publishes it
            rec.status, rec.cancelling_at = "cancelling", stamp
        else:  # nothing ran yet, so it is cancelled at once
            rec.status, rec.cancelling_at, rec.cancelled_at = "cancelled", stamp, stamp
            metrics.BATCHES.labels("cancelled").inc()
        self.meta.save_batch(rec)
        return rec

    def running(self, project: str) -> tuple[BatchRecord, float | None] | None:
        """The batch of `project` running now, if any, and the unix time of its last request (its heartbeat)."""
        rec = self.runner.current
        if rec is None or rec.project != project:
            return None
        return rec, self.runner.last_progress

    async def all_records(self, project: str, limit: int, status: str | None) -> list[BatchRecord]:
        return self.meta.list_batches(project, limit, status=status)

    async def unfinished_readers(self, project: str, file_id: str) -> list[str]:
        # no await in here: checked and acted on in one step of the loop, so no batch is created in between
        return [r.id for r in self.meta.unfinished_batches() if r.project == project and r.input_file_id == file_id]


def usage_of(rec: BatchRecord) -> dict[str, Any]:
    return {
        "input_tokens": rec.prompt_tokens,
        "output_tokens": rec.completion_tokens,
        "total_tokens": rec.prompt_tokens + rec.completion_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }
