"""Webhook jobs: Label Studio tasks to one gateway batch, and its replies back to Label Studio as predictions.

A job is keyed by the gateway project (the API key's), the Label Studio project, its task ids and the model
version, so a webhook delivered twice finds the first job instead of starting a second batch, while the same
webhook sent under another gateway project (another team's Label Studio with the same project id) is a job of
its own; writing skips tasks that already hold a
prediction of that model version, so even a re-run never duplicates one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeinfer.batch.labelstudio import Plan, TemplateError, prediction, reply_text
from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.labelstudio import studio
from kubeinfer.storage.records import BatchRecord, now

log = logging.getLogger(__name__)

KIND = "job"
ENDPOINT = "/v1/chat/completions"
POLL_SECONDS = 0.5


@dataclass
class Job:
    id: str
    ls_project: int
    task_ids: list[int]
    model_version: str
    #: accepted, running (the batch), writing (predictions to Label Studio), completed or failed
    status: str = "accepted"
    batch_id: str | None = None
    written: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    created_at: int = field(default_factory=now)


def job_id(project: str, ls_project: int, task_ids: list[int], model_version: str) -> str:
    digest = hashlib.sha256(json.dumps([project, ls_project, sorted(task_ids), model_version]).encode()).hexdigest()
    return f"lsjob-{digest[:24]}"


def claim(ctx: GatewayContext, project: str, job: Job) -> Job | None:
    """Store a new job; the existing one when this webhook was delivered before."""
    if ctx.meta.add_labelstudio(KIND, job.id, project, asdict(job)):
        return None
    data = ctx.meta.get_labelstudio(KIND, job.id, project)
    return Job(**data) if data is not None else None


def _save(ctx: GatewayContext, project: str, job: Job) -> None:
    ctx.meta.put_labelstudio(KIND, job.id, project, asdict(job))


def list_jobs(ctx: GatewayContext, project: str) -> list[Job]:
    return [Job(**d) for d in ctx.meta.list_labelstudio(KIND, project)]


async def _lines(lines: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for line in lines:
        yield json.dumps(line).encode() + b"\n"


async def _finished(ctx: GatewayContext, project: str, batch_id: str) -> BatchRecord:
    while True:
        rec = await ctx.batches.get(project, batch_id)
        if rec.terminal:
            return rec
        await asyncio.sleep(POLL_SECONDS)


def _read_predictions(
    ctx: GatewayContext, project: str, rec: BatchRecord, plan: Plan, task_ids: list[int], counts: studio.WriteCounts
) -> dict[int, dict[str, Any]]:
    predictions: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    for file_id in (rec.output_file_id, rec.error_file_id):
        if file_id is None:
            continue
        for raw in b"".join(ctx.files.content(project, file_id)).splitlines():
            line = json.loads(raw)
            task_id = int(line["custom_id"])
            seen.add(task_id)
            if line.get("error") or (line.get("response") or {}).get("status_code") != 200:
                counts.fail(task_id, f"the model request failed: {line.get('error') or line.get('response')}")
                continue
            try:
                predictions[task_id] = prediction(
                    reply_text(line["response"]["body"]), plan.task_type, plan.model_version
                )
            except ValueError as exc:
                counts.fail(task_id, str(exc))
    for task_id in task_ids:
        if task_id not in seen:
            counts.fail(task_id, f"no reply in batch {rec.id} ({rec.status})")
    return predictions


async def run(
    ctx: GatewayContext, project: str, job: Job, plan: Plan, url: str, token: str, sent: dict[int, dict[str, Any]]
) -> None:
    """Run the tasks as one batch of the gateway's own queue and write the predictions back.

    `sent` holds the task data the webhook carried (`send_payload`); the other tasks are read from Label Studio.
    """
    counts = studio.WriteCounts()
    try:
        client = studio.client(url, token)
        missing = [task_id for task_id in job.task_ids if task_id not in sent]
        data = {task_id: sent[task_id] for task_id in job.task_ids if task_id in sent}
        if missing:
            data |= await asyncio.to_thread(studio.fetch_task_data, client, job.ls_project, missing, counts)
        lines: list[dict[str, Any]] = []
        for task_id, task_data in data.items():
            try:
                body = plan.request_body(task_data)
            except TemplateError as exc:
                counts.fail(task_id, str(exc))
                continue
            lines.append({"custom_id": str(task_id), "method": "POST", "url": ENDPOINT, "body": body})
        if lines:
            upload = await ctx.files.upload(project, f"labelstudio-{job.ls_project}.jsonl", "batch", _lines(lines))
            metadata = {"labelstudio_project": str(job.ls_project), "labelstudio_job": job.id}
            rec = await ctx.batches.create(project, upload.id, ENDPOINT, "24h", metadata)
            job.batch_id, job.status = rec.id, "running"
            _save(ctx, project, job)
            rec = await _finished(ctx, project, rec.id)
            asked = [task_id for task_id in data if task_id not in counts.failed_ids]
            predictions = await asyncio.to_thread(_read_predictions, ctx, project, rec, plan, asked, counts)
            job.status = "writing"
            _save(ctx, project, job)
            await asyncio.to_thread(studio.write_predictions, client, predictions, counts)
        job.status = "completed"
    except Exception as exc:  # the job records why; the gateway goes on
        log.exception("Label Studio webhook job failed", extra={"job": job.id})
        job.status = "failed"
        counts.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        job.written, job.skipped, job.failed, job.errors = counts.written, counts.skipped, counts.failed, counts.errors
        _save(ctx, project, job)
        log.info("Label Studio webhook job done", extra={"job": job.id, "status": job.status, "written": job.written})
