"""The console's own stylesheet and script, served from the package (no frontend build, no CDN)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from kubeinfer.gateway.ui.errors import PageNotFound

router = APIRouter()

MEDIA_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


@cache
def _read(name: str) -> bytes:
    return (files("kubeinfer.gateway.ui") / "static" / name).read_bytes()


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in MEDIA_TYPES:
        raise PageNotFound(f"No such static file: {name}")
    return Response(_read(name), media_type=MEDIA_TYPES[name], headers={"Cache-Control": "public, max-age=300"})
