"""Models: what this gateway serves, what is in the model cache, and the fit analysis form.

In cluster mode the page also lists the namespace's ModelInstalls the viewer's project may see, and its
"Install a model" form creates one (labelled with the project) for the operator to install.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kubeinfer.cluster.model_installs import InstallForm, InvalidInstall, build_install, create_install, list_installs
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.gateway.schemas import AnalyzeRequest
from kubeinfer.gateway.ui import csrf
from kubeinfer.gateway.ui.errors import PageNotFound
from kubeinfer.gateway.ui.install_view import install_fields
from kubeinfer.gateway.ui.render import page
from kubeinfer.gateway.ui.session import Viewer
from kubeinfer.gateway.ui.urls import base_path
from kubeinfer.kube.errors import ClusterError
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


async def _cluster_context(ctx: GatewayContext, project: str) -> dict[str, Any]:
    """The namespace's ModelInstalls for the page, or the error that keeps them from showing."""
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        return {"namespace": None, "installs": [], "cluster_error": None}
    try:
        installs = await run_in_threadpool(list_installs, namespace, project)
    except ClusterError as exc:
        return {"namespace": namespace, "installs": [], "cluster_error": str(exc)}
    return {"namespace": namespace, "installs": [(i, install_fields(i)) for i in installs], "cluster_error": None}


async def _models_page(
    request: Request,
    ctx: GatewayContext,
    project: str,
    form: dict[str, str],
    status_code: int = 200,
    **extra: Any,
) -> Response:
    installed = await run_in_threadpool(ModelCache(ctx.settings.models_root).list)
    defaults: dict[str, Any] = {
        "result": None,
        "parts": [],
        "error": None,
        "install_form": InstallForm(),
        "install_errors": {},
        "created": None,
    }
    return page(
        request,
        "models.html",
        status_code,
        served=sorted(ctx.models.items()),
        installed=installed,
        form=form,
        **await _cluster_context(ctx, project),
        **(defaults | extra),
    )


@router.get("/models")
async def models_page(request: Request, project: Viewer, ctx: Ctx, created: str | None = None) -> Response:
    return await _models_page(request, ctx, project, DEFAULT_FORM, created=created)


@router.get("/models/installs")
async def installs_json(project: Viewer, ctx: Ctx) -> JSONResponse:
    """What the models page polls to keep each install's phase, progress and serving state current."""
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        raise PageNotFound("ModelInstalls need cluster mode (KUBEINFER_GATEWAY__CLUSTER_NAMESPACE)")
    try:
        installs = await run_in_threadpool(list_installs, namespace, project)
    except ClusterError as exc:
        raise ApiError(502, str(exc)) from None
    return JSONResponse({"installs": [install_fields(item) for item in installs]})


@router.post("/models/install", dependencies=[Depends(csrf.check)])
async def install_form(
    request: Request,
    project: Viewer,
    ctx: Ctx,
    name: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "pypi",
    location: Annotated[str, Form()] = "",
    file: Annotated[str, Form()] = "",
    sha256: Annotated[str, Form()] = "",
    quantization: Annotated[str, Form()] = "",
    replicas: Annotated[str, Form()] = "",
) -> Response:
    """Create a ModelInstall from the form; problems are shown next to their fields and nothing is created."""
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        raise PageNotFound("Installing models needs cluster mode (KUBEINFER_GATEWAY__CLUSTER_NAMESPACE)")
    form = InstallForm(name, source, location, file, sha256, quantization, replicas)
    try:
        install = build_install(form, namespace, project)
        await run_in_threadpool(create_install, namespace, install)
    except InvalidInstall as exc:
        return await _models_page(
            request, ctx, project, DEFAULT_FORM, 400, install_form=form, install_errors=exc.errors
        )
    except ClusterError as exc:
        raise ApiError(502, str(exc)) from None
    target = f"{base_path(request)}/models?created={quote(install.metadata.name)}#installs"
    return RedirectResponse(target, 303)


@router.post("/models/analyze", dependencies=[Depends(csrf.check)])
async def analyze_form(
    request: Request,
    project: Viewer,
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
        return await _models_page(request, ctx, project, form, 400, error=problems)
    if not body.content.strip():
        return await _models_page(request, ctx, project, form, 400, error="content: enter a model to analyze")
    try:
        result = await run_in_threadpool(
            analyze, body.content, body.ctx_size, body.parallel, body.memory_gb, ctx.settings.models_root
        )
    except AnalyzeError as exc:
        return await _models_page(request, ctx, project, form, exc.status_code, error=str(exc))
    return await _models_page(request, ctx, project, form, result=result, parts=breakdown(result["memory"]))
