"""`/labelstudio/{health,setup,predict,webhook}`: Label Studio's ML backend protocol, plus `/labelstudio/jobs`.

Label Studio joins the backend URL and the endpoint name, so the connection URL is
`http://<gateway>/labelstudio` and the gateway's own `/health` stays as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from kubeinfer.batch.engine import TransientEngineError
from kubeinfer.batch.labelstudio import (
    ProjectConfig,
    TemplateError,
    parse_project_config,
    prediction,
    project_id,
    reply_text,
)
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.labelstudio import connections, jobs
from kubeinfer.gateway.labelstudio.auth import LabelStudioProject
from kubeinfer.gateway.schemas import PROJECT_ID_PATTERN

#: Label Studio webhook actions this backend acts on.
TASKS_CREATED = "TASKS_CREATED"


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Webhook jobs run as tasks of the gateway's loop; shutting down cancels the ones still running."""
    running: set[asyncio.Task[None]] = set()
    app.state.labelstudio_jobs = running
    yield
    for task in list(running):
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


#: Checked by `_ls_project`, which says what an id looks like; the document carries the pattern.
ProjectIdString = Annotated[str, WithJsonSchema({"type": "string", "pattern": PROJECT_ID_PATTERN})]

router = APIRouter(prefix="/labelstudio", tags=["label studio"], lifespan=_lifespan)


def _ls_project(value: Any) -> int:
    try:
        return project_id(value)
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_request", "project") from None


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    project: int | ProjectIdString
    schema_: str = Field(alias="schema", min_length=1, description="The project's labeling config")
    hostname: str = ""
    access_token: str = ""
    extra_params: Any = None


class SetupResponse(BaseModel):
    model_version: str


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tasks: list[dict[str, Any]] = Field(min_length=1)
    project: int | ProjectIdString | None = None
    label_config: str = Field(min_length=1)


class PredictResponse(BaseModel):
    results: list[dict[str, Any]]
    model_version: str


class WebhookAccepted(BaseModel):
    job: str
    status: str
    tasks: int
    duplicate: bool = False


class JobList(BaseModel):
    data: list[dict[str, Any]]


@router.get("/health")
async def health(ctx: Ctx) -> dict[str, Any]:
    return {"status": "UP", "model": ctx.settings.gateway.model, "v2": True}


@router.post("/setup", response_model=SetupResponse)
async def setup(body: SetupRequest, project: LabelStudioProject, ctx: Ctx) -> SetupResponse:
    """Label Studio calls this when the backend is connected and before each prediction run."""
    connection = connections.Connection(
        ls_project=_ls_project(body.project),
        label_config=body.schema_,
        extra_params=_extra_params(body.extra_params),
        hostname=body.hostname,
        access_token=body.access_token,
    )
    plan = connections.plan(ctx, connection.config, connection.label_config)
    connections.save(ctx, project, connection)
    return SetupResponse(model_version=plan.model_version)


def _extra_params(value: Any) -> dict[str, Any]:
    try:
        return parse_project_config(value).model_dump(exclude_defaults=True)
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_labelstudio_config", "extra_params") from None


async def _complete(ctx: GatewayContext, body: dict[str, Any], slots: asyncio.Semaphore) -> str:
    async with slots:
        try:
            reply = await ctx.engine.post(jobs.ENDPOINT, body)
        except TransientEngineError as exc:
            raise ApiError(
                503, f"the engine is unavailable: {exc}", "engine_unavailable", type_="server_error"
            ) from None
    if reply.status_code != 200:
        raise ApiError(
            502, f"the engine answered {reply.status_code}: {reply.body}", "engine_error", type_="server_error"
        )
    try:
        return reply_text(reply.body)
    except ValueError as exc:
        raise ApiError(502, str(exc), "engine_error", type_="server_error") from None


@router.post("/predict", response_model=PredictResponse)
async def predict(body: PredictRequest, project: LabelStudioProject, ctx: Ctx) -> PredictResponse:
    """Predictions for the tasks given, in their order, with as many in flight as the engine has slots."""
    connection = connections.load(ctx, project, _ls_project(body.project)) if body.project is not None else None
    plan = connections.plan(ctx, connection.config if connection else ProjectConfig(), body.label_config)
    requests = []
    for i, task in enumerate(body.tasks):
        data = task.get("data")
        if not isinstance(data, dict):
            raise ApiError(400, f"tasks[{i}] has no 'data' object", "invalid_request", f"tasks.{i}.data")
        try:
            requests.append(plan.request_body(data))
        except TemplateError as exc:
            raise ApiError(400, f"task {task.get('id', i)}: {exc}", "invalid_request", f"tasks.{i}.data") from None
    slots = asyncio.Semaphore(await ctx.engine.slots())
    replies = await asyncio.gather(*(_complete(ctx, r, slots) for r in requests))
    results = [prediction(reply, plan.task_type, plan.model_version) for reply in replies]
    return PredictResponse(results=results, model_version=plan.model_version)


@router.post("/webhook", response_model=WebhookAccepted, status_code=201)
async def webhook(request: Request, project: LabelStudioProject, ctx: Ctx) -> WebhookAccepted:
    """`TASKS_CREATED` (a project webhook) starts a batch over the new tasks; other actions are refused."""
    try:
        payload = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, f"webhook body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise ApiError(400, "webhook body must be a JSON object with an 'action'", "invalid_request", "action")
    action = payload["action"]
    if action != TASKS_CREATED:
        raise ApiError(
            400,
            f"unsupported webhook action '{action}': this backend handles {TASKS_CREATED}",
            "invalid_request",
            "action",
        )
    ls_project = _ls_project(payload.get("project"))
    tasks = payload.get("tasks")
    if (
        not isinstance(tasks, list)
        or not tasks
        or not all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in tasks)
    ):
        raise ApiError(400, "webhook 'tasks' must be a non-empty list of tasks with ids", "invalid_request", "tasks")
    connection = connections.load(ctx, project, ls_project)
    if connection is None:
        raise ApiError(
            404,
            f"Label Studio project {ls_project} is not connected: add the gateway as its ML backend first",
            "not_connected",
            "project",
        )
    sent_project = payload["project"] if isinstance(payload["project"], dict) else {}
    label_config = sent_project.get("label_config") or connection.label_config
    plan = connections.plan(ctx, connection.config, label_config)
    url, token = connections.write_target(ctx, connection)
    task_ids = [int(t["id"]) for t in tasks]
    job_id = jobs.job_id(project, ls_project, task_ids, plan.model_version)
    job = jobs.Job(job_id, ls_project, task_ids, plan.model_version)
    existing = jobs.claim(ctx, project, job)
    if existing is not None:
        return WebhookAccepted(job=existing.id, status=existing.status, tasks=len(existing.task_ids), duplicate=True)
    running: set[asyncio.Task[None]] = request.app.state.labelstudio_jobs
    sent = {int(t["id"]): t["data"] for t in tasks if isinstance(t.get("data"), dict)}
    task = asyncio.create_task(jobs.run(ctx, project, job, plan, url, token, sent), name=job.id)
    running.add(task)
    task.add_done_callback(running.discard)
    return WebhookAccepted(job=job.id, status=job.status, tasks=len(task_ids))


@router.get("/jobs", response_model=JobList)
async def list_jobs(project: LabelStudioProject, ctx: Ctx) -> JobList:
    """The project's webhook jobs, newest first, with their batch and prediction counts."""
    return JobList(data=[asdict(j) for j in jobs.list_jobs(ctx, project)])
