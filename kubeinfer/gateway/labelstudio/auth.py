"""The gateway's API key from a Bearer header or, as Label Studio's ML backend connection sends it, basic auth."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from kubeinfer.gateway.auth import KeyRing, client_address
from kubeinfer.gateway.errors import ApiError


def api_key(authorization: str | None) -> str | None:
    """`Bearer <key>`, or `Basic base64(user:<key>)` where the password is the key and the user is free."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "basic auth credentials are not valid base64", "invalid_api_key") from None
        _, sep, password = decoded.partition(":")
        if not sep or not password:
            raise ApiError(
                401, "basic auth needs the gateway API key as its password (any user name)", "missing_api_key"
            )
        return password
    raise ApiError(401, f"unsupported Authorization scheme '{scheme}': use Bearer or Basic", "invalid_api_key")


def _project(request: Request) -> str:
    ring: KeyRing = request.app.state.ctx.keys
    return ring.project_of(api_key(request.headers.get("authorization")), client_address(request))


LabelStudioProject = Annotated[str, Depends(_project)]
