"""Cross-site request forgery protection for the console's forms.

Double submit: a random token lives in an HttpOnly, SameSite=Strict cookie and in a hidden field of
every form the console renders; a POST must carry both, equal. Another site can make a browser send the
cookie (SameSite does not separate ports of one host) but cannot read it to fill in the field. A POST
whose Origin header names another host is refused before its body is read.
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from kubeinfer.gateway.ui.urls import cookie_path

COOKIE = "kubeinfer_csrf"
FIELD = "csrf_token"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


class CsrfRejected(Exception):
    """A form post that did not come from a page of this console."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_of(request: Request) -> tuple[str, bool]:
    """The browser's token, or a new one (and True) when it has none or a malformed one."""
    current = request.cookies.get(COOKIE, "")
    if _TOKEN.match(current):
        return current, False
    return new_token(), True


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE, token, path=cookie_path(request), httponly=True, samesite="strict", secure=is_secure(request)
    )


def _same_origin(request: Request) -> bool:
    """The Origin names this gateway: its Host, or the host a reverse proxy says it forwarded.

    A browser's cross-site request cannot set X-Forwarded-Host, so accepting it lets the console work
    behind proxies that rewrite Host without letting another site through.
    """
    origin = request.headers.get("origin")
    if origin is None:  # older browsers and non-browser clients; the token alone decides
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return urlsplit(origin).netloc in hosts


def check_origin(request: Request) -> None:
    """The part of the check that needs no body: run it before reading one."""
    if not _same_origin(request):
        raise CsrfRejected("the form was posted from another site")


def check_field(request: Request, field: object) -> None:
    """The form's token field against the browser's cookie."""
    cookie = request.cookies.get(COOKIE, "")
    if not cookie or not isinstance(field, str) or not hmac.compare_digest(cookie.encode(), field.encode()):
        raise CsrfRejected("the form's security token is missing or does not match this browser's")


async def check(request: Request) -> None:
    """Dependency of every console POST route with a urlencoded form; raises CsrfRejected.

    Uploads stream their multipart body instead (kubeinfer.gateway.ui.upload) and check the same two
    things themselves.
    """
    check_origin(request)
    form = await request.form()
    check_field(request, form.get(FIELD))
