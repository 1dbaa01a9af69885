"""`/v1/models` (what this gateway serves) and `/api/models/analyze` (will a model fit here?)."""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.schemas import MODEL_REFERENCE_PATTERN, AnalyzeRequest, AnalyzeResponse, ModelList, ModelObject
from kubeinfer.models.catalog import CATALOG

router = APIRouter(tags=["models"])

#: What can be analysed, checked first: a repo name the Hub would refuse used to reach huggingface_hub, whose
#: refusal was answered 502 `hub_unreachable`.
_REFERENCE = re.compile(MODEL_REFERENCE_PATTERN)


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

    if not _REFERENCE.fullmatch(body.content):
        raise ApiError(
            400,
            f"Could not extract model ID from {body.content.strip()!r}: expected a Hugging Face URL "
            "(https://huggingface.co/org/model) or repo id (org/model) as the Hub names repos, a path to a .gguf "
            f"file or a catalog model ({', '.join(sorted(CATALOG))})",
            "invalid_model_reference",
            "content",
        )
    try:
        result = await run_in_threadpool(
            analyze, body.content, body.ctx_size, body.parallel, body.memory_gb, ctx.settings.models_root
        )
    except AnalyzeError as exc:
        name = body.content.strip()
        if name in CATALOG and exc.code == "invalid_model_reference":
            # a catalog name is looked up in the model cache only; "could not extract a model id" would mislead
            message = f"catalog model '{name}' is not in the model cache: pull it first (kubeinfer models pull {name})"
            raise ApiError(404, message, "model_not_found", "content") from None
        raise ApiError(exc.status_code, str(exc), exc.code, "content") from None
    return AnalyzeResponse(**result)
