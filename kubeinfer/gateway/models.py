"""`/v1/models` (what this gateway serves) and `/api/models/analyze` (will a model fit here?)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.schemas import AnalyzeRequest, AnalyzeResponse, ModelList, ModelObject

router = APIRouter(tags=["models"])


async def _all_models(ctx: Ctx) -> dict[str, int]:
    """This gateway's own model plus, in cluster mode, every served ModelInstall of its namespace."""
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        return dict(ctx.models)
    from kubeinfer.gateway.cluster_models import served_models

    return await run_in_threadpool(served_models, namespace) | ctx.models


@router.get("/v1/models", response_model=ModelList)
async def list_models(_project: Project, ctx: Ctx) -> ModelList:
    models = await _all_models(ctx)
    return ModelList(data=[ModelObject(id=name, created=created) for name, created in sorted(models.items())])


@router.get("/v1/models/{model}", response_model=ModelObject)
async def retrieve_model(model: str, _project: Project, ctx: Ctx) -> ModelObject:
    models = await _all_models(ctx)
    if model not in models:
        raise ApiError(404, f"The model '{model}' does not exist", "model_not_found", "model")
    return ModelObject(id=model, created=models[model])


@router.post("/api/models/analyze", response_model=AnalyzeResponse)
async def analyze_model(body: AnalyzeRequest, _project: Project, ctx: Ctx) -> AnalyzeResponse:
    from kubeinfer.models.analysis import AnalyzeError, analyze

    try:
        result = await run_in_threadpool(
            analyze, body.content, body.ctx_size, body.parallel, body.memory_gb, ctx.settings.models_root
        )
    except AnalyzeError as exc:
        raise ApiError(exc.status_code, str(exc), exc.code, "content") from None
    return AnalyzeResponse(**result)
