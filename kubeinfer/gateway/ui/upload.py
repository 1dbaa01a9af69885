"""A console upload: the gateway's own streamed multipart upload behind the console's CSRF check.

The file goes through `kubeinfer.gateway.uploads.MultipartUpload` into the same file store as
`POST /v1/files`, so it meets the same limits and fails with the same messages (a file over
`MAX_UPLOAD_BYTES`, a malformed or cut-short body, a wrong purpose). It is never spooled whole first:
the form's token must come before the file part (the console's forms put it first, and browsers send
fields in page order), so a forged post is refused before any of its file is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.errors import ApiError, RequestTooLarge
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.uploads import MultipartUpload
from kubeinfer.storage.blobs import FileTooLargeError
from kubeinfer.storage.files import UPLOAD_PURPOSES
from kubeinfer.storage.records import FileRecord


class UploadRefused(Exception):
    """What the API would answer for this upload: its status, message and the field at fault."""

    def __init__(self, status_code: int, message: str, param: str | None) -> None:
        super().__init__(message)
        self.status_code, self.message, self.param = status_code, message, param


@dataclass(frozen=True)
class Received:
    """The stored file (None when the form's file field was left empty) and the form's other fields."""

    record: FileRecord | None
    fields: dict[str, str]


async def _guarded(request: Request, upload: MultipartUpload) -> AsyncIterator[bytes]:
    """The file's bytes, once the token that precedes them matched the browser's cookie."""
    checked = False
    async for chunk in upload.file_chunks():
        if not checked:
            csrf.check_field(request, upload.fields.get(csrf.FIELD))
            checked = True
        yield chunk
    if not checked:  # an empty file part: every field has arrived by now
        csrf.check_field(request, upload.fields.get(csrf.FIELD))


async def receive(request: Request, ctx: GatewayContext, project: str) -> Received:
    """Store the form's file under `project` with the purpose its `purpose` field names (default batch).

    Raises CsrfRejected for a forged post and UploadRefused with the API's answer for a refused upload;
    nothing is kept in either case.
    """
    csrf.check_origin(request)
    try:
        upload = MultipartUpload(request)
        record = await ctx.files.upload(project, "pending", "batch", _guarded(request, upload))
    except ApiError as exc:
        raise UploadRefused(exc.status_code, exc.message, exc.param) from None
    except FileTooLargeError as exc:
        raise UploadRefused(413, str(exc), "file") from None
    except RequestTooLarge as exc:
        raise UploadRefused(413, str(exc.detail), exc.param) from None
    purpose = upload.fields.get("purpose", "batch")
    if upload.filename is None or purpose not in UPLOAD_PURPOSES or record.bytes == 0:
        await run_in_threadpool(ctx.files.delete, project, record.id)
        if upload.filename is None:
            raise UploadRefused(400, "the multipart body has no 'file' part", "file")
        if purpose not in UPLOAD_PURPOSES:
            raise UploadRefused(400, f"purpose must be one of {sorted(UPLOAD_PURPOSES)}, got '{purpose}'", "purpose")
        return Received(None, upload.fields)
    return Received(ctx.files.rename(record, upload.filename, purpose), upload.fields)
