"""Batches in cluster mode: each one is a BatchJob resource, the source of truth the operator drives.

`POST /v1/batches` creates the BatchJob (named by the batch id), reads go back to the API and map the
status to a Batch object, and cancel sets `spec.cancel`. The operator's merge Job writes the output and
error files straight into the shared blob directory; the gateway registers them as files of the batch's
project the first time it sees them named in a status, so `GET /v1/files/{id}/content` serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import time
from datetime import datetime
from functools import cache
from typing import Any

from kubeinfer.batch.service import COMPLETION_WINDOWS, BatchNotFound, InvalidBatchRequest, check_batch_request
from kubeinfer.kube.client import api_client
from kubeinfer.resources.batch_job import BATCH_ENDPOINTS
from kubeinfer.resources.names import BATCH_PLURAL, GROUP, PROJECT_LABEL, SEQUENCE_ANNOTATION, VERSION
from kubeinfer.storage.blobs import BlobStore
from kubeinfer.storage.records import BatchRecord, FileRecord, MetadataStore, new_id

PLURAL = BATCH_PLURAL


@cache
def _custom_api() -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client())


def _created(body: dict[str, Any]) -> int:
    stamp = body["metadata"]["creationTimestamp"]
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def record_of(body: dict[str, Any]) -> BatchRecord:
    """The Batch object's fields from a BatchJob, as the embedded gateway's record type."""
    spec, status = body["spec"], body.get("status") or {}
    counts, usage = status.get("requestCounts") or {}, status.get("usage") or {}
    created = status.get("createdAt") or _created(body)
    return BatchRecord(
        id=body["metadata"]["name"],
        project=spec.get("project", "default"),
        endpoint=spec.get("endpoint", "/v1/chat/completions"),
        input_file_id=spec["inputFileId"],
        completion_window=spec.get("completionWindow", "24h"),
        created_at=created,
        expires_at=status.get("expiresAt") or created + COMPLETION_WINDOWS["24h"],
        status=status.get("status", "validating"),
        metadata=spec.get("metadata") or None,
        model=status.get("model") or spec.get("model"),
        errors=[
            {"code": e.get("code"), "message": e.get("message"), "param": e.get("param"), "line": e.get("line")}
            for e in status.get("errors", [])
        ],
        output_file_id=status.get("outputFileId"),
        error_file_id=status.get("errorFileId"),
        in_progress_at=status.get("inProgressAt"),
        finalizing_at=status.get("finalizingAt"),
        completed_at=status.get("completedAt"),
        failed_at=status.get("failedAt"),
        expired_at=status.get("expiredAt") if status.get("status") == "expired" else None,
        cancelling_at=status.get("cancellingAt"),
        cancelled_at=status.get("cancelledAt"),
        total=int(counts.get("total", 0)),
        completed=int(counts.get("completed", 0)),
        failed=int(counts.get("failed", 0)),
        prompt_tokens=int(usage.get("promptTokens", 0)),
        completion_tokens=int(usage.get("completionTokens", 0)),
        inference_seconds=float(_worker_seconds(status)),
    )


def _worker_seconds(status: dict[str, Any]) -> int:
    """The time the batch's workers ran: from their start to finalizing (or to now while they run)."""
    started = status.get("workersStartedAt")
    if started is None:
        return 0
    ended = status.get("finalizingAt") or status.get("cancellingAt") or status.get("expiredAt")
    return max(0, int(ended or time.time()) - int(started))


def priority_of(metadata: dict[str, str] | None) -> int:
    """`metadata.priority` becomes the BatchJob's priority (OpenAI's API has no such field)."""
    raw = (metadata or {}).get("priority", "0")
    try:
        value = int(raw)
    except ValueError:
        value = 1000
    if not -100 <= value <= 100:
        raise InvalidBatchRequest(f"metadata.priority must be an integer from -100 to 100, got '{raw}'", "metadata")
    return value


def _sequence(body: dict[str, Any]) -> tuple[int, int, str]:
    annotation = (body["metadata"].get("annotations") or {}).get(SEQUENCE_ANNOTATION, "0")
    return _created(body), int(annotation) if annotation.isdigit() else 0, body["metadata"]["name"]


class ClusterBatchService:
    """The cluster gateway's `BatchBackend`, answered from BatchJob resources in one namespace.

    The Kubernetes client blocks, so each call runs in a thread and the event loop keeps serving.
    """

    def __init__(self, namespace: str, meta: MetadataStore, blobs: BlobStore, workers: int) -> None:
        self.namespace = namespace
        self.meta = meta
        self.blobs = blobs
        self.workers = workers

    async def create(
        self,
        project: str,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRecord:
        return await asyncio.to_thread(self._create, project, input_file_id, endpoint, completion_window, metadata)

    async def get(self, project: str, batch_id: str) -> BatchRecord:
        return await asyncio.to_thread(self._get, project, batch_id)

    async def page(self, project: str, limit: int, after: str | None) -> list[BatchRecord]:
        return await asyncio.to_thread(self._page, project, limit, after)

    async def all_records(self, project: str, limit: int, status: str | None) -> list[BatchRecord]:
        return await asyncio.to_thread(self._all_records, project, limit, status)

    async def cancel(self, project: str, batch_id: str) -> BatchRecord:
        return await asyncio.to_thread(self._cancel, project, batch_id)

    async def unfinished_readers(self, project: str, file_id: str) -> list[str]:
        records = await asyncio.to_thread(self._page, project, 1_000_000, None)
        return [r.id for r in records if not r.terminal and r.input_file_id == file_id]

    def _create(
        self,
        project: str,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> BatchRecord:
        check_batch_request(self.meta, project, input_file_id, endpoint, completion_window, BATCH_ENDPOINTS)
        priority = priority_of(metadata)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "BatchJob",
            "metadata": {
                "name": new_id("batch"),
                "labels": {PROJECT_LABEL: project},
                "annotations": {SEQUENCE_ANNOTATION: str(time.time_ns())},
            },
            "spec": {
                "inputFileId": input_file_id,
                "endpoint": endpoint,
                "completionWindow": completion_window,
                "project": project,
                "workers": self.workers,
                "priority": priority,
                "metadata": metadata or {},
            },
        }
        created = _custom_api().create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        return record_of(created)

    def _read(self, project: str, batch_id: str) -> dict[str, Any]:
        from kubernetes.client import ApiException

        try:
            body: dict[str, Any] = _custom_api().get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, batch_id
            )
        except ApiException as exc:
            if exc.status == 404:
                raise BatchNotFound(batch_id) from None
            raise
        if body["spec"].get("project", "default") != project:
            raise BatchNotFound(batch_id)
        return body

    def _get(self, project: str, batch_id: str) -> BatchRecord:
        return self._register(record_of(self._read(project, batch_id)))

    def _page(self, project: str, limit: int, after: str | None) -> list[BatchRecord]:
        """Newest first; `after` is the last id of the previous page."""
        listed = _custom_api().list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        # by spec.project rather than the label, so BatchJobs applied with kubectl are listed too
        items = [i for i in listed if i["spec"].get("project", "default") == project]
        items.sort(key=_sequence, reverse=True)
        records = [record_of(i) for i in items]
        if after is not None:
            ids = [r.id for r in records]
            records = records[ids.index(after) + 1 :] if after in ids else []
        return [self._register(r) for r in records[:limit]]

    def _all_records(self, project: str, limit: int, status: str | None) -> list[BatchRecord]:
        """Newest first, for `/v1/jobs`: the project's BatchJobs, optionally of one status."""
        records = self._page(project, 1_000_000, None)
        return [r for r in records if status is None or r.status == status][:limit]

    def _cancel(self, project: str, batch_id: str) -> BatchRecord:
        rec = record_of(self._read(project, batch_id))
        if rec.status in ("completed", "failed", "expired"):
            raise InvalidBatchRequest(f"Batch {batch_id} is {rec.status} and cannot be cancelled")
        if rec.status in ("cancelling", "cancelled", "finalizing"):
            return rec
        patched = _custom_api().patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, batch_id, {"spec": {"cancel": True}}
        )
        rec = record_of(patched)
        # The operator moves the status on; the caller sees the cancel at once, as OpenAI answers it.
        rec.status, rec.cancelling_at = "cancelling", rec.cancelling_at or int(time.time())
        return rec

    def _register(self, rec: BatchRecord) -> BatchRecord:
        """Make the merge Job's files files of the batch's project (once; the blobs are already in place)."""
        for kind, file_id in (("output", rec.output_file_id), ("errors", rec.error_file_id)):
            if file_id is None or self.meta.get_file(file_id) is not None:
                continue
            hashed = _hash_blob(self.blobs, file_id)
            if hashed is None:
                continue
            size, sha = hashed
            record = FileRecord(file_id, rec.project, f"{rec.id}_{kind}.jsonl", "batch_output", size, sha)
            with contextlib.suppress(sqlite3.IntegrityError):  # a concurrent read registered it first
                self.meta.add_file(record)
        return rec


def _hash_blob(blobs: BlobStore, key: str) -> tuple[int, str] | None:
    """Size and SHA-256 of a blob, streamed: with S3 no copy is left in the download cache. None if missing."""
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in blobs.iter_bytes(key):
            digest.update(chunk)
            size += len(chunk)
    except FileNotFoundError:
        return None
    return size, digest.hexdigest()


@cache
def cluster_batches(namespace: str, meta: MetadataStore, blobs: BlobStore, workers: int) -> ClusterBatchService:
    return ClusterBatchService(namespace, meta, blobs, workers)
