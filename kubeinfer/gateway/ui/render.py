"""Autoescaped Jinja templates of the console and the one helper that turns a template into a page."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.timefmt import human_time
from kubeinfer.gateway.ui.urls import base_path

NAV = (
    ("batches", "Batches"),
    ("files", "Files"),
    ("jobs", "Job history"),
    ("models", "Models"),
    ("matrices", "Matrices"),
    ("logs", "Logs"),
)

#: Badge colour of a cluster object's phase (BenchmarkMatrix or ModelInstall); other phases stay grey.
PHASE_CLASS = {
    "Completed": "st-completed",
    "Ready": "st-completed",
    "Running": "st-in_progress",
    "Downloading": "st-in_progress",
    "Starting": "st-in_progress",
    "Failed": "st-failed",
}


def format_number(value: int | float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def format_bytes(value: int | None) -> str:
    """Binary units, as `ls -lh` and the model cache show sizes."""
    if value is None:
        return "–"
    size = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{value:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kubeinfer.gateway.ui", "templates"),
        autoescape=True,  # every template, whatever its name: pages show user-provided text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = human_time
    env.filters["number"] = format_number
    env.filters["bytes"] = format_bytes
    return env


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; issues the CSRF cookie to a browser that has none yet, so its forms can post."""
    token, fresh = csrf.token_of(request)
    html = (
        environment()
        .get_template(template)
        .render(
            base=base_path(request),
            csrf_token=token,
            nav=NAV,
            project=getattr(request.state, "project", None),
            **context,
        )
    )
    response = HTMLResponse(html, status_code)
    if fresh:
        csrf.set_cookie(request, response, token)
    return response
