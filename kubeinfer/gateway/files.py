"""`/v1/files`: upload (streamed), list, retrieve, download and delete a project's files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.batches import Batches
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.schemas import FileDeleted, FileList, FileObject, page
from kubeinfer.gateway.uploads import MultipartUpload
from kubeinfer.storage.files import UPLOAD_PURPOSES

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post(
    "",
    response_model=FileObject,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": sorted(UPLOAD_PURPOSES)},
                        },
                    }
                }
            },
        }
    },
)
async def upload_file(request: Request, project: Project, ctx: Ctx) -> FileObject:
    """The body as a whole is limited while it streams (kubeinfer.gateway.limits), the file part by the store."""
    upload = MultipartUpload(request)
    # the purpose field may follow the file part, so it is checked after the upload is stored
    record = await ctx.files.upload(project, "pending", "batch", upload.file_chunks())
    purpose = upload.fields.get("purpose", "")
    if upload.filename is None or purpose not in UPLOAD_PURPOSES:
        await run_in_threadpool(ctx.files.delete, project, record.id)
        if upload.filename is None:
            raise ApiError(400, "the multipart body has no 'file' part", "invalid_request", "file")
        raise ApiError(
            400, f"purpose must be one of {sorted(UPLOAD_PURPOSES)}, got '{purpose}'", "invalid_request", "purpose"
        )
    record = ctx.files.rename(record, upload.filename, purpose)
    return FileObject.of(record)


@router.get("", response_model=FileList)
async def list_files(
    project: Project,
    ctx: Ctx,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    after: str | None = None,
) -> FileList:
    records, more = page(ctx.files.list(project, purpose, limit + 1, after), limit)
    data = [FileObject.of(r) for r in records]
    return FileList(
        data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None
    )


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, project: Project, ctx: Ctx) -> FileObject:
    return FileObject.of(ctx.files.get(project, file_id))


@router.get("/{file_id}/content")
async def file_content(file_id: str, project: Project, ctx: Ctx) -> StreamingResponse:
    record = ctx.files.get(project, file_id)
    return StreamingResponse(
        ctx.files.content(project, record.id),
        media_type="application/octet-stream",
        headers={"Content-Length": str(record.bytes)},
    )


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, project: Project, ctx: Ctx, batches: Batches) -> FileDeleted:
    """The input of a batch that has not finished cannot be deleted: a batch resumed after a restart reads it
    again to send what is left, and finished results would be lost with it (docs/gateway.md)."""
    record = ctx.files.get(project, file_id)
    readers = await batches.unfinished_readers(project, record.id)
    if readers:
        raise ApiError(
            409,
            f"file {record.id} is the input of unfinished batch {', '.join(readers)}: "
            "wait for it to finish or cancel it, then delete the file",
            "file_in_use",
            "file_id",
        )
    return FileDeleted(id=(await run_in_threadpool(ctx.files.delete, project, file_id)).id)
