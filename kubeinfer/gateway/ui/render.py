"""Autoescaped Jinja templates of the console and the one helper that turns a template into a page."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.urls import base_path

NAV = (
    ("batches", "Batches"),
    ("jobs", "Job history"),
    ("models", "Models"),
    ("matrices", "Matrices"),
    ("logs", "Logs"),
)


def format_time(epoch: int | float | None) -> str:
    if epoch is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def format_number(value: int | float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kubeinfer.gateway.ui", "templates"),
        autoescape=True,  # every template, whatever its name: pages show user-provided text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = format_time
    env.filters["number"] = format_number
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
