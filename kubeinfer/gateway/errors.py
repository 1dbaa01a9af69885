"""Errors in OpenAI's shape (`{"error": {message, type, param, code}}`), which the `openai` client parses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from kubeinfer.batch.service import BatchNotFound, InvalidBatchRequest
from kubeinfer.storage.blobs import FileTooLargeError
from kubeinfer.storage.files import FileNotFound
from kubeinfer.storage.s3 import StorageUnavailable

#: `code` of the errors Starlette raises itself (no route, wrong method...), by status.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.type = type_
        self.headers = headers or {}


class RequestTooLarge(HTTPException):
    """Raised while a request body streams in, once it passes the limit; FastAPI re-raises HTTPExceptions
    from body parsing, so this reaches the handler below however the route reads its body."""

    def __init__(self, limit: int, setting: str, upload: bool = False) -> None:
        what = "the upload is larger than the maximum size" if upload else "the request body is larger than the limit"
        super().__init__(413, f"{what} of {limit} bytes ({setting})")
        self.limit = limit
        self.code = "file_too_large" if upload else "request_too_large"
        self.param = "file" if upload else None


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    headers.update(exc.headers)
    return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), exc.status_code, headers=headers)


def http_error(request: Request, exc: HTTPException) -> ApiError:
    """Starlette's own errors (an unknown route, a method the route lacks, a body too large) as OpenAI's."""
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"Unknown request URL: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    if isinstance(exc, RequestTooLarge):
        return ApiError(413, message, exc.code, exc.param)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    type_ = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return ApiError(exc.status_code, message, code, type_=type_, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path. Starlette's 405 names only the first route's methods
    (`Allow: POST` on `/v1/files`, which `GET` lists too), but `Allow` must list all the resource supports.

    Each method is tried against every route's `matches` (included routers answer it too, and hide their
    routes' methods)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


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

    async def starlette_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _response(http_error(request, exc))

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # Starlette logs it with its traceback
        message = f"internal error: {type(exc).__name__}"
        return _response(ApiError(500, message, "internal_error", type_="server_error"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, starlette_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(FileNotFound, not_found)
    app.add_exception_handler(BatchNotFound, not_found)
    app.add_exception_handler(InvalidBatchRequest, invalid)
    app.add_exception_handler(FileTooLargeError, too_large)
    app.add_exception_handler(StorageUnavailable, storage_unavailable)
    app.add_exception_handler(RequestValidationError, validation)
