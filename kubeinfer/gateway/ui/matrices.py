"""Benchmark matrices: the reports under `reports_dir`, one matrix's cell grid, its HTML report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.bench.recommend import cell_rating
from kubeinfer.bench.report.html_report import STATUS_CLASS, cell_grid
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.ui.errors import PageNotFound
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.reports import REPORT_HTML, MatrixReport, ReportNotFound, find_report, find_reports
from kubeinfer.gateway.ui.session import Viewer

router = APIRouter()

#: The HTML report is self-contained (inline style and script) and shown as an opaque, sandboxed origin.
REPORT_POLICY = (
    "sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'"
)


def summary(report: MatrixReport) -> dict[str, Any]:
    if report.data is None:
        return {"cells": 0, "statuses": [], "best": None, "timestamp": None, "complete": None}
    meta = report.data.metadata
    best = report.data.recommendations.get("overall_best") or {}
    return {
        "cells": len(report.data.cells),
        "statuses": sorted(Counter(cell.status.value for cell in report.data.cells).items()),
        "best": best.get("cell") if isinstance(best, dict) else None,
        "timestamp": meta.get("timestamp"),
        "complete": meta.get("complete"),
    }


async def _report(ctx: Ctx, name: str) -> MatrixReport:
    try:
        return await run_in_threadpool(find_report, ctx.settings.gateway.reports_dir, name)
    except ReportNotFound as exc:
        raise PageNotFound(str(exc)) from None


@router.get("/matrices")
async def matrix_list(request: Request, _project: Viewer, ctx: Ctx) -> Response:
    root = ctx.settings.gateway.reports_dir
    reports = await run_in_threadpool(find_reports, root)
    return page(request, "matrices.html", root=root, reports=[(r, summary(r)) for r in reports])


@router.get("/matrices/{name}")
async def matrix_detail(request: Request, name: str, _project: Viewer, ctx: Ctx) -> Response:
    report = await _report(ctx, name)
    if report.data is None:
        return page(request, "matrix.html", 422, report=report, info=summary(report), grid=None, cells=[])
    cells = [{"cell": cell, "rating": cell_rating(cell)} for cell in report.data.cells]
    return page(
        request,
        "matrix.html",
        report=report,
        info=summary(report),
        grid=cell_grid(report.data.cells),
        cells=cells,
        status_class=STATUS_CLASS,
    )


@router.get("/matrices/{name}/report.html")
async def matrix_html(name: str, _project: Viewer, ctx: Ctx) -> Response:
    report = await _report(ctx, name)
    if not report.has_html:
        raise PageNotFound(f"The matrix {name} has no {REPORT_HTML}")
    return FileResponse(
        report.folder / REPORT_HTML,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_POLICY},
    )
