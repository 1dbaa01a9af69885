"""Logs: tail of a model server's, worker's or benchmark cell's log, with search and download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.ui import pod_logs
from kubeinfer.gateway.ui.errors import PageNotFound
from kubeinfer.gateway.ui.logtail import LogFile, LogNotFound, find_log, log_files, search, tail
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer

router = APIRouter()

MAX_LINES = 5000


def _files(ctx: Ctx) -> list[LogFile]:
    from kubeinfer.gateway.app import data_dir  # the app imports the console, so not at module level

    gw = ctx.settings.gateway
    return log_files(data_dir(ctx.settings), gw.logs_dir, gw.reports_dir)


async def _log(ctx: Ctx, log_id: str) -> LogFile:
    try:
        return find_log(await run_in_threadpool(_files, ctx), log_id)
    except LogNotFound as exc:
        raise PageNotFound(str(exc)) from None


@router.get("/logs")
async def log_list(request: Request, _project: Viewer, ctx: Ctx) -> Response:
    namespace = ctx.settings.gateway.cluster_namespace
    pods, pod_error = await run_in_threadpool(pod_logs.listing, namespace)
    files = await run_in_threadpool(_files, ctx)
    return page(request, "logs.html", logs=files, pods=pods, pod_error=pod_error, namespace=namespace)


@router.get("/logs/view")
async def log_view(
    request: Request,
    _project: Viewer,
    ctx: Ctx,
    log_id: Annotated[str, Query(alias="id", min_length=1, max_length=512)],
    q: Annotated[str, Query(max_length=200)] = "",
    lines: Annotated[int, Query(ge=1, le=MAX_LINES)] = 200,
) -> Response:
    namespace, pod = ctx.settings.gateway.cluster_namespace, pod_logs.pod_name(log_id)
    if namespace is not None and pod is not None:  # a pod's log, through the API server
        read = await run_in_threadpool(pod_logs.lines, namespace, pod, lines, bool(q.strip()))
        shown, matched = search(read, lines, q.strip())
        log = pod_logs.log_file(namespace, pod)
        return page(request, "log.html", log=log, lines=shown, matched=matched, query=q.strip(), count=lines)
    log = await _log(ctx, log_id)
    shown, matched = await run_in_threadpool(tail, log.path, lines, q.strip())
    return page(request, "log.html", log=log, lines=shown, matched=matched, query=q.strip(), count=lines)


@router.get("/logs/download")
async def log_download(
    _project: Viewer, ctx: Ctx, log_id: Annotated[str, Query(alias="id", min_length=1, max_length=512)]
) -> Response:
    namespace, pod = ctx.settings.gateway.cluster_namespace, pod_logs.pod_name(log_id)
    if namespace is not None and pod is not None:
        chunks = await run_in_threadpool(pod_logs.download, namespace, pod)
        headers = {"Content-Disposition": f'attachment; filename="{pod}.log"'}
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8", headers=headers)
    log = await _log(ctx, log_id)
    return FileResponse(log.path, media_type="text/plain; charset=utf-8", filename=log.path.name)
