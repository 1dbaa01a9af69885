"""Models: what this gateway serves, what is in the model cache, and the fit analysis form."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kubeinfer.gateway.context import Ctx
from kubeinfer.gateway.schemas import AnalyzeRequest
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.models.cache import ModelCache

router = APIRouter()

#: Parts of the estimate, in the order the breakdown stacks them.
MEMORY_PARTS = (
    ("model_gb", "Model weights"),
    ("kv_cache_gb", "KV cache"),
    ("overhead_gb", "Compute buffers and overhead"),
)

DEFAULT_FORM = {"content": "smollm2-135m", "ctx_size": "4096", "parallel": "1", "memory_gb": ""}


def breakdown(memory: dict[str, float]) -> list[dict[str, Any]]:
    """Each part with its share of the total, for the table and the stacked bar."""
    total = memory.get("total_gb") or 0.0
    parts, offset = [], 0.0
    for key, label in MEMORY_PARTS:
        value = memory.get(key, 0.0)
        share = 100 * value / total if total else 0.0
        parts.append({"key": key, "label": label, "gb": value, "percent": share, "offset": offset})
        offset += share
    return parts


async def _models_page(
    request: Request, ctx: Ctx, form: dict[str, str], status_code: int = 200, **analysis: Any
) -> Response:
    installed = await run_in_threadpool(ModelCache(ctx.settings.models_root).list)
    context = {"result": None, "parts": [], "error": None} | analysis
    return page(
        request,
        "models.html",
        status_code,
        served=sorted(ctx.models.items()),
        installed=installed,
        form=form,
        **context,
    )


@router.get("/models")
async def models_page(request: Request, _project: Viewer, ctx: Ctx) -> Response:
    return await _models_page(request, ctx, DEFAULT_FORM)


@router.post("/models/analyze", dependencies=[Depends(csrf.check)])
async def analyze_form(
    request: Request,
    _project: Viewer,
    ctx: Ctx,
    content: Annotated[str, Form()] = "",
    ctx_size: Annotated[str, Form()] = "4096",
    parallel: Annotated[str, Form()] = "1",
    memory_gb: Annotated[str, Form()] = "",
) -> Response:
    """The same validation and analysis as `POST /api/models/analyze`; problems are shown next to the form."""
    from kubeinfer.models.analysis import AnalyzeError, analyze  # gguf and numpy load on first use only

    form = {"content": content, "ctx_size": ctx_size, "parallel": parallel, "memory_gb": memory_gb}
    try:
        body = AnalyzeRequest.model_validate(
            {"content": content, "ctx_size": ctx_size, "parallel": parallel, "memory_gb": memory_gb.strip() or None}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return await _models_page(request, ctx, form, 400, error=problems)
    if not body.content.strip():
        return await _models_page(request, ctx, form, 400, error="content: enter a model to analyze")
    try:
        result = await run_in_threadpool(
            analyze, body.content, body.ctx_size, body.parallel, body.memory_gb, ctx.settings.models_root
        )
    except AnalyzeError as exc:
        return await _models_page(request, ctx, form, exc.status_code, error=str(exc))
    return await _models_page(request, ctx, form, result=result, parts=breakdown(result["memory"]))
