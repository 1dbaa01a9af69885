"""Batch pages: the project's batches, a new batch from an uploaded file, one batch with live progress, cancel."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.batch.service import InvalidBatchRequest
from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.batch_form import ENDPOINTS, BatchForm, InvalidBatchForm, batch_body
from kubeinfer.gateway.ui.batch_view import progress
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.gateway.ui.upload import UploadRefused, receive
from kubeinfer.gateway.ui.urls import base_path
from kubeinfer.storage.files import FileNotFound
from kubeinfer.storage.records import BatchRecord

router = APIRouter()

PAGE_SIZE = 50
#: Files offered in the "new batch" form's list of uploaded files, newest first.
FILE_CHOICES = 200


@router.get("/batches")
async def batch_list(
    request: Request, project: Viewer, batches: Batches, after: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    records: list[BatchRecord] = await batches.page(project, PAGE_SIZE + 1, after)
    rows = [(rec, progress(rec)) for rec in records[:PAGE_SIZE]]
    next_after = records[PAGE_SIZE - 1].id if len(records) > PAGE_SIZE else None
    return page(request, "batches.html", rows=rows, next_after=next_after)


async def _new_page(
    request: Request,
    ctx: GatewayContext,
    project: str,
    form: BatchForm,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    uploaded = await run_in_threadpool(ctx.files.list, project, "batch", FILE_CHOICES, None)
    return page(
        request,
        "batch_new.html",
        status_code,
        form=form,
        errors=errors or {},
        endpoints=ENDPOINTS,
        uploaded=uploaded,
        max_upload_bytes=ctx.files.max_upload_bytes,
    )


@router.get("/batches/new")
async def batch_new(
    request: Request, project: Viewer, ctx: Ctx, file: Annotated[str, Query(max_length=64)] = ""
) -> Response:
    return await _new_page(request, ctx, project, BatchForm(input_file_id=file))


@router.post("/batches/new")
async def batch_create(request: Request, project: Viewer, ctx: Ctx, batches: Batches) -> Response:
    """Upload the JSONL file (or take one uploaded before) and create the batch, as the API's two calls do.

    Nothing is kept when a check fails: a file uploaded by this form is deleted again.
    """
    try:
        received = await receive(request, ctx, project)
    except UploadRefused as exc:
        return await _new_page(request, ctx, project, BatchForm(), exc.status_code, {exc.param or "form": exc.message})
    form, uploaded = BatchForm.of(received.fields), received.record
    try:
        body = batch_body(form, uploaded.id if uploaded is not None else None)
        rec = await batches.create(project, body.input_file_id, body.endpoint, body.completion_window, body.metadata)
    except (InvalidBatchForm, InvalidBatchRequest, FileNotFound) as exc:
        if uploaded is not None:
            await run_in_threadpool(ctx.files.delete, project, uploaded.id)
        param = getattr(exc, "param", None) or ("input_file_id" if isinstance(exc, FileNotFound) else "form")
        status_code = 404 if isinstance(exc, FileNotFound) else 400
        return await _new_page(request, ctx, project, form, status_code, {param: str(exc)})
    return RedirectResponse(f"{base_path(request)}/batches/{quote(rec.id, safe='')}", 303)


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
