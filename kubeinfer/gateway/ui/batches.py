"""Batch pages: the project's batches, one batch with live progress, its files, cancel."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from kubeinfer.batch.service import InvalidBatchRequest
from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.batch_view import progress
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.gateway.ui.urls import base_path
from kubeinfer.storage.records import BatchRecord

router = APIRouter()

PAGE_SIZE = 50


@router.get("/batches")
async def batch_list(
    request: Request, project: Viewer, batches: Batches, after: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    records: list[BatchRecord] = await batches.page(project, PAGE_SIZE + 1, after)
    rows = [(rec, progress(rec)) for rec in records[:PAGE_SIZE]]
    next_after = records[PAGE_SIZE - 1].id if len(records) > PAGE_SIZE else None
    return page(request, "batches.html", rows=rows, next_after=next_after)


@router.get("/batches/{batch_id}")
async def batch_detail(request: Request, batch_id: str, project: Viewer, batches: Batches) -> Response:
    rec: BatchRecord = await batches.get(project, batch_id)
    return page(request, "batch.html", batch=rec, view=progress(rec), error=None)


@router.get("/batches/{batch_id}/progress")
async def batch_progress(batch_id: str, project: Viewer, batches: Batches) -> JSONResponse:
    rec: BatchRecord = await batches.get(project, batch_id)
    return JSONResponse(progress(rec))


@router.post("/batches/{batch_id}/cancel", dependencies=[Depends(csrf.check)])
async def batch_cancel(request: Request, batch_id: str, project: Viewer, batches: Batches) -> Response:
    try:
        await batches.cancel(project, batch_id)
    except InvalidBatchRequest as exc:
        rec: BatchRecord = await batches.get(project, batch_id)
        return page(request, "batch.html", 409, batch=rec, view=progress(rec), error=str(exc))
    return RedirectResponse(f"{base_path(request)}/batches/{quote(batch_id, safe='')}", 303)


@router.get("/files/{file_id}/content")
async def file_download(file_id: str, project: Viewer, ctx: Ctx) -> StreamingResponse:
    record = ctx.files.get(project, file_id)
    filename = quote(record.filename, safe="")
    return StreamingResponse(
        ctx.files.content(project, record.id),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(record.bytes),
            "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
        },
    )
