"""Single requests (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) proxied to the engine.

Bodies pass through untouched so every engine option works; only the model name is checked. Streams are
relayed chunk by chunk and the upstream request is closed as soon as the client goes away, which makes
llama-server stop generating for it and free the slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.metrics.gateway import StreamMeter, record_usage
from kubeinfer.metrics.usage import TokenUsage, usage_of

router = APIRouter(prefix="/v1", tags=["inference"])

_PASS_HEADERS = ("content-type", "x-request-id")


async def _body(request: Request, ctx: GatewayContext) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", "missing_model", "model")
    if model not in ctx.models:
        served = ", ".join(sorted(ctx.models))
        raise ApiError(
            404, f"The model '{model}' does not exist; this gateway serves: {served}", "model_not_found", "model"
        )
    return body


async def _proxy(path: str, request: Request, ctx: GatewayContext) -> Response:
    received = time.perf_counter()
    endpoint = path.removeprefix("/v1/")
    body = await _body(request, ctx)
    upstream = ctx.engine.http.build_request("POST", path, json=body)
    try:
        response = await ctx.engine.http.send(upstream, stream=bool(body.get("stream")))
    except httpx.TransportError as exc:
        raise ApiError(
            503, f"the engine is unavailable: {type(exc).__name__}", "engine_unavailable", type_="server_error"
        ) from None
    headers = {k: v for k, v in response.headers.items() if k.lower() in _PASS_HEADERS}
    if not body.get("stream") or response.status_code != 200:
        content = await response.aread()
        await response.aclose()
        if response.status_code == 200:
            record_usage(endpoint, _usage(content))
        return Response(content, response.status_code, headers=headers)

    meter = StreamMeter(endpoint, received)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                if await request.is_disconnected():
                    break
                meter.feed(chunk, time.perf_counter())
                yield chunk
        finally:
            await response.aclose()  # closes the upstream connection: llama-server cancels the task
            meter.finish()

    return StreamingResponse(relay(), response.status_code, headers=headers, media_type="text/event-stream")


def _usage(content: bytes) -> TokenUsage | None:
    try:
        return usage_of(json.loads(content))
    except ValueError:
        return None


@router.post("/chat/completions")
async def chat_completions(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/chat/completions", request, ctx)


@router.post("/completions")
async def completions(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/completions", request, ctx)


@router.post("/embeddings")
async def embeddings(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/embeddings", request, ctx)
