"""Errors as pages: a login redirect, or an HTML page saying what went wrong (the API keeps its JSON)."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from kubeinfer.batch.service import BatchNotFound, InvalidBatchRequest
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui.csrf import CsrfRejected
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import LoginRequired
from kubeinfer.gateway.ui.urls import base_path
from kubeinfer.storage.files import FileNotFound


class PageNotFound(LookupError):
    """A console object (a report, a log) that does not exist or is not this project's."""


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return page(request, "error.html", status_code, title=title, message=message)


def install_page_errors(app: FastAPI) -> None:
    async def login(request: Request, _: Exception) -> Response:
        return RedirectResponse(f"{base_path(request)}/login", 303)

    async def forged(request: Request, exc: Exception) -> Response:
        message = f"Refused: {exc}. Reload the page and submit the form again."
        return error_page(request, 403, "Request refused", message)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "Not found", str(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        return error_page(request, 400, "Invalid request", str(exc))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_page(request, exc.status_code, "Error", exc.message)

    async def bad_parameters(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()) if p not in ('query', 'path', 'body'))}: {error['msg']}"
            for error in exc.errors()
        )
        return error_page(request, 400, "Invalid request", problems or "invalid request")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(request, exc.status_code, "Error", str(exc.detail))

    app.add_exception_handler(LoginRequired, login)
    app.add_exception_handler(CsrfRejected, forged)
    app.add_exception_handler(PageNotFound, not_found)
    app.add_exception_handler(BatchNotFound, not_found)
    app.add_exception_handler(FileNotFound, not_found)
    app.add_exception_handler(InvalidBatchRequest, invalid)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, bad_parameters)
    app.add_exception_handler(HTTPException, http_error)
