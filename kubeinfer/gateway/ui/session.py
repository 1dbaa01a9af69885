"""Who is looking: the project of the API key a browser stored at login, in an HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from kubeinfer.gateway.auth import KeyRing
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.urls import cookie_path

COOKIE = "kubeinfer_key"


class LoginRequired(Exception):
    """No key cookie, or one the gateway does not accept (any more)."""


def key_ring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.ctx.keys
    return ring


def _viewer(request: Request) -> str:
    """The project whose objects the page shows; the same keys and projects as the API's."""
    try:
        project = key_ring(request).project_of(request.cookies.get(COOKIE))
    except ApiError:
        raise LoginRequired() from None
    request.state.project = project
    return project


Viewer = Annotated[str, Depends(_viewer)]


def sign_in(request: Request, response: Response, key: str) -> None:
    """Store the key (HttpOnly: scripts never see it) and give the new session a fresh CSRF token."""
    secure, path = csrf.is_secure(request), cookie_path(request)
    response.set_cookie(COOKIE, key, path=path, httponly=True, samesite="strict", secure=secure)
    csrf.set_cookie(request, response, csrf.new_token())


def sign_out(request: Request, response: Response) -> None:
    secure, path = csrf.is_secure(request), cookie_path(request)
    response.delete_cookie(COOKIE, path=path, httponly=True, samesite="strict", secure=secure)
