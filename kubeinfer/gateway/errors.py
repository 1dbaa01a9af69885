"""Errors in OpenAI's shape (`{"error": {message, type, param, code}}`), which the `openai` client parses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kubeinfer.batch.service import BatchNotFound, InvalidBatchRequest
from kubeinfer.storage.blobs import FileTooLargeError
from kubeinfer.storage.files import FileNotFound
from kubeinfer.storage.s3 import StorageUnavailable


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.type = type_


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status_code, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Map domain exceptions to status codes, so routes never translate errors themselves."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _response(exc)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _response(ApiError(404, str(exc), "not_found"))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        return _response(ApiError(400, str(exc), "invalid_request", getattr(exc, "param", None)))

    async def too_large(_: Request, exc: Exception) -> JSONResponse:
        return _response(ApiError(413, str(exc), "file_too_large", "file"))

    async def storage_unavailable(_: Request, exc: Exception) -> JSONResponse:
        message = f"file storage is unavailable: {exc}"
        return _response(ApiError(503, message, "storage_unavailable", type_="server_error"))

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        message = f"{param}: {first.get('msg', 'invalid request')}" if param else str(first.get("msg"))
        return _response(ApiError(400, message, "invalid_request", param or None))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(FileNotFound, not_found)
    app.add_exception_handler(BatchNotFound, not_found)
    app.add_exception_handler(InvalidBatchRequest, invalid)
    app.add_exception_handler(FileTooLargeError, too_large)
    app.add_exception_handler(StorageUnavailable, storage_unavailable)
    app.add_exception_handler(RequestValidationError, validation)
