"""File pages: the project's files, one file with its first lines, upload, download and delete.

Uploads and deletes go through the API's own code (the streamed upload of `POST /v1/files`, the handler of
`DELETE /v1/files/{id}`), so the console refuses what the API refuses, with the API's messages: a file over
the size limit, a wrong purpose, the input of an unfinished batch ("file in use", 409).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.files import delete_file
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.file_view import preview
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.gateway.ui.upload import UploadRefused, receive
from kubeinfer.gateway.ui.urls import base_path
from kubeinfer.storage.files import UPLOAD_PURPOSES

router = APIRouter()

PAGE_SIZE = 50


async def _list_page(
    request: Request,
    ctx: GatewayContext,
    project: str,
    after: str | None = None,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    records = await run_in_threadpool(ctx.files.list, project, None, PAGE_SIZE + 1, after)
    next_after = records[PAGE_SIZE - 1].id if len(records) > PAGE_SIZE else None
    defaults = {"upload_error": None, "deleted": None, "max_upload_bytes": ctx.files.max_upload_bytes}
    return page(
        request,
        "files.html",
        status_code,
        files=records[:PAGE_SIZE],
        next_after=next_after,
        purposes=sorted(UPLOAD_PURPOSES),
        **(defaults | extra),
    )


@router.get("/files")
async def file_list(
    request: Request,
    project: Viewer,
    ctx: Ctx,
    after: Annotated[str | None, Query(max_length=64)] = None,
    deleted: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await _list_page(request, ctx, project, after, deleted=deleted)


@router.post("/files")
async def file_upload(request: Request, project: Viewer, ctx: Ctx) -> Response:
    try:
        received = await receive(request, ctx, project)
    except UploadRefused as exc:
        return await _list_page(request, ctx, project, None, exc.status_code, upload_error=exc)
    if received.record is None:
        refused = UploadRefused(400, "choose a file to upload (an empty file has nothing to send)", "file")
        return await _list_page(request, ctx, project, None, 400, upload_error=refused)
    return RedirectResponse(f"{base_path(request)}/files/{quote(received.record.id, safe='')}", 303)


async def _detail(
    request: Request, ctx: GatewayContext, project: str, file_id: str, batches: Batches, **extra: Any
) -> Response:
    record = ctx.files.get(project, file_id)
    shown = await run_in_threadpool(preview, ctx.files.content(project, record.id), record.bytes)
    readers = await batches.unfinished_readers(project, record.id)
    status_code = extra.pop("status_code", 200)
    return page(
        request, "file.html", status_code, file=record, preview=shown, readers=readers, **({"error": None} | extra)
    )


@router.get("/files/{file_id}")
async def file_detail(request: Request, file_id: str, project: Viewer, ctx: Ctx, batches: Batches) -> Response:
    return await _detail(request, ctx, project, file_id, batches)


@router.post("/files/{file_id}/delete", dependencies=[Depends(csrf.check)])
async def file_delete(request: Request, file_id: str, project: Viewer, ctx: Ctx, batches: Batches) -> Response:
    try:
        deleted = await delete_file(file_id, project, ctx, batches)
    except ApiError as exc:
        return await _detail(request, ctx, project, file_id, batches, status_code=exc.status_code, error=exc.message)
    return RedirectResponse(f"{base_path(request)}/files?deleted={quote(deleted.id, safe='')}", 303)


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
