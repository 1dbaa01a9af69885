"""Benchmark matrices: the reports under `reports_dir`, one matrix's cell grid, its HTML report.

In cluster mode (`cluster_namespace` set) the list also shows the namespace's BenchmarkMatrix resources
that the viewer's project may see, under `/cluster/matrices/<name>`; local reports stay listed beside them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.bench.recommend import cell_rating
from kubeinfer.bench.report import ReportData
from kubeinfer.bench.report.html_report import STATUS_CLASS, cell_grid, render_html
from kubeinfer.cluster.matrices import ClusterMatrix, list_matrices, read_matrix
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui.errors import PageNotFound
from kubeinfer.gateway.ui.matrix_view import matrix_view
from kubeinfer.gateway.ui.render import PHASE_CLASS, page
from kubeinfer.gateway.ui.reports import REPORT_HTML, MatrixReport, ReportNotFound, find_report, find_reports
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.kube.errors import ClusterError, NotFound

router = APIRouter()

#: The HTML report is self-contained (inline style and script) and shown as an opaque, sandboxed origin.
REPORT_POLICY = (
    "sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'"
)


def summary(report: MatrixReport) -> dict[str, Any]:
    return report_summary(report.data)


def report_summary(data: ReportData | None) -> dict[str, Any]:
    if data is None:
        return {"cells": 0, "statuses": [], "best": None, "timestamp": None, "complete": None}
    meta = data.metadata
    best = data.recommendations.get("overall_best") or {}
    return {
        "cells": len(data.cells),
        "statuses": sorted(Counter(cell.status.value for cell in data.cells).items()),
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
async def matrix_list(request: Request, project: Viewer, ctx: Ctx) -> Response:
    root, namespace = ctx.settings.gateway.reports_dir, ctx.settings.gateway.cluster_namespace
    reports = await run_in_threadpool(find_reports, root)
    in_cluster, cluster_error = [], None
    if namespace:
        try:
            in_cluster = await run_in_threadpool(list_matrices, namespace, project)
        except ClusterError as exc:
            cluster_error = str(exc)
    return page(
        request,
        "matrices.html",
        root=root,
        reports=[(r, summary(r)) for r in reports],
        namespace=namespace,
        cluster_matrices=in_cluster,
        cluster_error=cluster_error,
        phase_class=PHASE_CLASS,
    )


def _detail(request: Request, name: str, data: ReportData | None, error: str | None, **extra: Any) -> Response:
    """The matrix page: the cell grid and the cell table, or the error that keeps them from showing."""
    given = extra.pop("cells", [])
    cells = data.cells if data is not None else given
    return page(
        request,
        "matrix.html",
        422 if error else 200,
        name=name,
        error=error,
        info=report_summary(data),
        grid=cell_grid(cells) if cells else None,
        cells=[{"cell": cell, "rating": cell_rating(cell)} for cell in cells],
        view=matrix_view(cells),
        status_class=STATUS_CLASS,
        phase_class=PHASE_CLASS,
        **{"html_url": None, "cluster": None} | extra,
    )


@router.get("/matrices/{name}")
async def matrix_detail(request: Request, name: str, _project: Viewer, ctx: Ctx) -> Response:
    report = await _report(ctx, name)
    html_url = f"matrices/{quote(name, safe='')}/report.html" if report.has_html else None
    return _detail(request, report.name, report.data, report.error, html_url=html_url)


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


async def _cluster_matrix(ctx: Ctx, name: str, project: str) -> ClusterMatrix:
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        raise PageNotFound("This gateway is not in cluster mode: it shows no BenchmarkMatrix resources")
    try:
        return await run_in_threadpool(read_matrix, namespace, name, project)
    except NotFound:
        raise PageNotFound(f"No such BenchmarkMatrix in namespace {namespace}: {name}") from None
    except ClusterError as exc:
        raise ApiError(502, str(exc)) from None


@router.get("/cluster/matrices/{name}")
async def cluster_matrix_detail(request: Request, name: str, project: Viewer, ctx: Ctx) -> Response:
    matrix = await _cluster_matrix(ctx, name, project)
    html_url = f"cluster/matrices/{quote(name, safe='')}/report.html" if matrix.report is not None else None
    return _detail(
        request, name, matrix.report, matrix.error, html_url=html_url, cluster=matrix.summary, cells=matrix.cells
    )


@router.get("/cluster/matrices/{name}/report.html")
async def cluster_matrix_html(name: str, project: Viewer, ctx: Ctx) -> Response:
    """The HTML report `kubeinfer bench report` writes, rendered from the report ConfigMap."""
    matrix = await _cluster_matrix(ctx, name, project)
    if matrix.report is None:
        raise PageNotFound(
            matrix.error or f"The BenchmarkMatrix {name} has no report yet (phase {matrix.summary.phase})"
        )
    html = await run_in_threadpool(render_html, matrix.report)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_POLICY})
