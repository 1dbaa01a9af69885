"""Operations on the embedded gateway (`/v1/ops/...`): its model server and running batch, their logs, restart.

The model server is shared by every project, so anyone may read its state and log but only a project listed
in `admin_projects` (or anyone, with --insecure-no-auth) may restart it. A project sees only its own batch.
The server's state comes from the gateway's watchdog when it owns llama-server; with an external engine
only what the engine's `/health` answers is known, and it cannot be restarted from here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from kubeinfer.engines.watchdog import ServerState, ServerWatchdog
from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.ui.logtail import tail

router = APIRouter(prefix="/v1/ops", tags=["operations"])

EXTERNAL_SERVER = "llama-server"
MAX_TAIL = 10_000
#: How often a followed log is checked for new bytes.
FOLLOW_POLL_SECONDS = 0.25
#: A restart answers once the new server is healthy, or after this long with its state then.
RESTART_WAIT_SECONDS = 300.0


class Worker(BaseModel):
    """One model server or batch worker; the same fields `kubeinfer workers status` shows in a cluster."""

    name: str
    kind: Literal["server", "batch"]
    model: str | None = None
    #: server: starting|running|hung|backoff|stopped|unreachable; batch: the batch's status.
    state: str
    ready: bool = False
    restarts: int = 0
    #: Unix time of the last sign of life: a healthy /health (server) or a finished request (batch).
    last_heartbeat: float | None = None
    memory_bytes: int | None = None
    pid: int | None = None
    batch_id: str | None = None
    done: int | None = None
    total: int | None = None
    detail: str | None = None


class WorkerList(BaseModel):
    object: Literal["list"] = "list"
    mode: Literal["embedded"] = "embedded"
    data: list[Worker]


def admin_projects(ctx: GatewayContext) -> set[str]:
    return {p.strip() for p in ctx.settings.gateway.admin_projects.split(",") if p.strip()}


def _server_from_state(state: ServerState) -> Worker:
    return Worker(
        name=state.name,
        kind="server",
        model=state.model,
        state=state.state,
        ready=state.state == "running",
        restarts=state.restarts,
        last_heartbeat=state.last_heartbeat,
        memory_bytes=state.rss_bytes,
        pid=state.pid,
        detail=f"last exit: {state.last_exit}" if state.last_exit else None,
    )


async def _external_server(ctx: GatewayContext) -> Worker:
    """An engine this gateway does not own: healthy or not is all it can tell."""
    url = ctx.engine.base_url
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            healthy = (await client.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        healthy = False
    return Worker(
        name=EXTERNAL_SERVER,
        kind="server",
        model=ctx.settings.gateway.model,
        state="running" if healthy else "unreachable",
        ready=healthy,
        last_heartbeat=time.time() if healthy else None,
        detail=f"external engine at {url}",
    )


async def _server(ctx: GatewayContext) -> Worker:
    watchdog = ctx.watchdog
    if watchdog is None:
        return await _external_server(ctx)
    return _server_from_state(watchdog.state())


def _batch_worker(ctx: GatewayContext, project: str) -> Worker | None:
    running = ctx.batches.running(project)
    if running is None:
        return None
    rec, heartbeat = running
    return Worker(
        name=rec.id,
        kind="batch",
        model=rec.model,
        state=rec.status,
        ready=rec.status == "in_progress",
        last_heartbeat=heartbeat,
        batch_id=rec.id,
        done=rec.completed + rec.failed,
        total=rec.total,
    )


@router.get("/workers")
async def list_workers(ctx: Ctx, project: Project) -> WorkerList:
    workers = [await _server(ctx)]
    batch = _batch_worker(ctx, project)
    if batch is not None:
        workers.append(batch)
    return WorkerList(data=workers)


async def _known_server(ctx: GatewayContext, project: str, name: str) -> Worker:
    """The server named `name`; a clear 400 for this project's batch, 404 for anything else."""
    server = await _server(ctx)
    if name == server.name:
        return server
    batch = _batch_worker(ctx, project)
    if batch is not None and name == batch.name:
        raise ApiError(
            400,
            f"{name} is a batch running inside the gateway: it has no log or process of its own "
            "(see `kubeinfer batches show`, or cancel it with `kubeinfer batches cancel`)",
            "not_a_server",
            "name",
        )
    raise ApiError(404, f"No such worker: {name} (this gateway runs '{server.name}')", "worker_not_found", "name")


def _log_path(ctx: GatewayContext) -> Path:
    watchdog = ctx.watchdog
    if watchdog is None:
        raise ApiError(
            404,
            f"the gateway uses an external engine at {ctx.engine.base_url}; its log is wherever that engine writes it",
            "log_not_found",
        )
    return watchdog.state().log_path


def _read_from(path: Path, position: int) -> tuple[bytes, int]:
    """Bytes appended since `position`, and the new position; from the start when the file was truncated."""
    size = path.stat().st_size if path.exists() else 0
    if size < position:
        position = 0
    if size == position:
        return b"", position
    with path.open("rb") as handle:
        handle.seek(position)
        chunk = handle.read(size - position)
    return chunk, position + len(chunk)


def _end_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _ended(watchdog: ServerWatchdog, followed: int | None) -> tuple[bool, int | None]:
    """Whether the followed process has ended, and the pid followed: the one running when the follow began,
    else the first one started after it. A restart (new pid), a crash (none) or a stop ends it."""
    state = watchdog.state()
    if state.state == "stopped":
        return True, followed
    if followed is None:
        return False, state.pid
    return state.pid != followed, followed


async def _follow(path: Path, request: Request, first: list[str], watchdog: ServerWatchdog) -> AsyncIterator[bytes]:
    """The tail, then every byte appended, until the client goes or the process followed ends, as
    `kubectl logs -f` ends with its container (the next process is followed by asking again)."""
    if first:
        yield ("\n".join(first) + "\n").encode()
    position = await asyncio.to_thread(_end_of, path)
    ended, followed = _ended(watchdog, None)
    while not ended and not await request.is_disconnected():
        chunk, position = await asyncio.to_thread(_read_from, path, position)
        if chunk:
            yield chunk
        else:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        ended, followed = _ended(watchdog, followed)
    if ended:  # what it wrote before it ended
        chunk, position = await asyncio.to_thread(_read_from, path, position)
        if chunk:
            yield chunk


@router.get("/workers/{name}/logs", response_model=None)
async def worker_logs(
    name: str,
    request: Request,
    ctx: Ctx,
    project: Project,
    tail_lines: Annotated[int, Query(alias="tail", ge=0, le=MAX_TAIL)] = 100,
    follow: bool = False,
) -> PlainTextResponse | StreamingResponse:
    await _known_server(ctx, project, name)
    path = _log_path(ctx)
    lines: list[str] = []
    if path.exists() and tail_lines:
        lines, _ = await asyncio.to_thread(tail, path, tail_lines)
    if follow and ctx.watchdog is not None:
        stream = _follow(path, request, lines, ctx.watchdog)
        return StreamingResponse(stream, media_type="text/plain; charset=utf-8")
    return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""))


@router.post("/workers/{name}/restart")
async def restart_worker(name: str, ctx: Ctx, project: Project) -> Worker:
    await _known_server(ctx, project, name)
    if not ctx.keys.open and project not in admin_projects(ctx):
        raise ApiError(
            403,
            f"project '{project}' may not restart the shared model server: "
            "add it to KUBEINFER_GATEWAY__ADMIN_PROJECTS to allow it",
            "forbidden",
            type_="permission_error",
        )
    watchdog = ctx.watchdog
    if watchdog is None:
        raise ApiError(
            409,
            "the gateway uses an external engine (--engine-url): restart that engine where it runs",
            "external_engine",
        )
    await watchdog.restart(f"requested by project {project}")
    await watchdog.wait_running(RESTART_WAIT_SECONDS)
    return _server_from_state(watchdog.state())
