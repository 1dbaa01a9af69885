"""Single requests (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) proxied to the engine.

Bodies pass through untouched so every engine option works; only the model name is checked. Streams are
relayed chunk by chunk and the upstream request is closed as soon as the client goes away, which makes
llama-server stop generating for it and free the slot.

In cluster mode a model served by a ModelInstall goes to that model's replicas, found through the
EndpointSlices of the ModelInstall's Service and chosen by prefix-aware routing (kubeinfer.batch.routing):
one EndpointPool per model, kept in the gateway's context. A replica that refuses the connection is set
aside and the request goes to the next one. The fixed engine serves only the gateway's own model, and only
while no ModelInstall of that model has a ready replica.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kubeinfer.batch.engine import EngineClient, TransientEngineError
from kubeinfer.batch.pool import EndpointPool, NoEndpoints
from kubeinfer.gateway.auth import Project
from kubeinfer.gateway.context import Ctx, GatewayContext
from kubeinfer.gateway.errors import ApiError
from kubeinfer.metrics.gateway import StreamMeter, record_answer

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["inference"])

_PASS_HEADERS = ("content-type", "x-request-id")
#: How long "no ModelInstall serves this model" is believed before the ModelInstalls are listed again.
MISS_SECONDS = 5.0
_misses: dict[tuple[str, str], float] = {}


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", "missing_model", "model")
    if "messages" in body:
        _check_messages(body["messages"])
    return body


def _check_messages(messages: Any) -> None:
    """The shape of `messages`, which llama-server answers with a 500 when wrong (a `role` that is no string):
    a client's mistake must be a 400 it does not retry. Roles and content forms are the engine's to judge."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array of message objects", "invalid_request", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{i}] must be an object", "invalid_request", f"messages.{i}")
        if not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{i}].role must be a string", "invalid_request", f"messages.{i}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ApiError(
                400,
                f"messages[{i}].content must be a string, an array of content parts or null",
                "invalid_request",
                f"messages.{i}.content",
            )


def _check_served(model: str, ctx: GatewayContext) -> None:
    if model not in ctx.models:
        served = ", ".join(sorted(ctx.models))
        raise ApiError(
            404, f"The model '{model}' does not exist; this gateway serves: {served}", "model_not_found", "model"
        )


def _unavailable(message: str) -> ApiError:
    return ApiError(503, message, "engine_unavailable", type_="server_error")


async def _cluster_pool(model: str, ctx: GatewayContext) -> EndpointPool | None:
    """The pool of `model`'s ModelInstall replicas in cluster mode; None when no ModelInstall serves it."""
    namespace = ctx.settings.gateway.cluster_namespace
    if not namespace:
        return None
    pool = ctx.pools.get(model)
    if pool is not None:
        return pool
    if _misses.get((namespace, model), 0.0) > time.monotonic():
        return None
    from kubeinfer.cluster.endpoints import installs_serving, model_endpoints

    try:
        installs = await run_in_threadpool(installs_serving, namespace, model)
    except Exception as exc:  # noqa: BLE001  (any API or connection failure means "cannot route now")
        raise _unavailable(f"cannot list the ModelInstalls of namespace {namespace}: {exc}") from None
    if not installs:
        if len(_misses) > 1024:
            _misses.clear()
        _misses[(namespace, model)] = time.monotonic() + MISS_SECONDS
        return None

    async def resolve() -> list[str]:
        try:
            urls = await run_in_threadpool(model_endpoints, namespace, model)
        except Exception as exc:  # noqa: BLE001
            raise NoEndpoints(f"cannot read the EndpointSlices of model {model}: {exc}") from None
        return urls or []

    return ctx.pools.setdefault(model, EndpointPool(resolve))


async def close_pools(ctx: GatewayContext) -> None:
    for pool in ctx.pools.values():
        await pool.aclose()
    ctx.pools.clear()


async def _send_engine(engine: EngineClient, path: str, body: dict[str, Any]) -> httpx.Response:
    upstream = engine.http.build_request("POST", path, json=body)
    try:
        return await engine.http.send(upstream, stream=bool(body.get("stream")))
    except httpx.TransportError as exc:
        raise _unavailable(f"the engine is unavailable: {type(exc).__name__}") from None


async def _send_pool(pool: EndpointPool, path: str, body: dict[str, Any]) -> tuple[httpx.Response, Callable[[], None]]:
    """Send to the routed replica; one that cannot be reached is set aside and the next one tried."""
    tried: set[str] = set()
    failure = "no ready replica"
    while True:
        try:
            url = await pool.acquire(body)
        except TransientEngineError as exc:
            raise _unavailable(f"model {body['model']}: {exc}") from None
        if url in tried:
            pool.release(url, body)
            raise _unavailable(f"model {body['model']}: every replica failed, last: {failure}")
        tried.add(url)
        client = pool.clients[url]
        try:
            response = await client.http.send(
                client.http.build_request("POST", path, json=body), stream=bool(body.get("stream"))
            )
        except httpx.TransportError as exc:
            pool.release(url, body, failed=True)
            failure = f"{url}: {type(exc).__name__}"
            log.warning("replica unreachable, trying another", extra={"url": url, "error": str(exc)})
            continue
        return response, functools.partial(pool.release, url, body)


async def _send(path: str, body: dict[str, Any], ctx: GatewayContext) -> tuple[httpx.Response, Callable[[], None]]:
    model = body["model"]
    pool = await _cluster_pool(model, ctx)
    if pool is not None:
        try:
            live = await pool.refresh()
        except TransientEngineError as exc:
            raise _unavailable(str(exc)) from None
        if live or model not in ctx.models:
            return await _send_pool(pool, path, body)
    _check_served(model, ctx)
    return await _send_engine(ctx.engine, path, body), lambda: None


async def _proxy(path: str, request: Request, ctx: GatewayContext) -> Response:
    received = time.perf_counter()
    endpoint = path.removeprefix("/v1/")
    body = await _body(request)
    response, done = await _send(path, body, ctx)
    headers = {k: v for k, v in response.headers.items() if k.lower() in _PASS_HEADERS}
    if not body.get("stream") or response.status_code != 200:
        try:
            content = await response.aread()
        finally:
            await response.aclose()
            done()
        if response.status_code != 200:
            raise engine_error(response.status_code, content, path, body["model"])
        record_answer(endpoint, body["model"], content, time.perf_counter() - received)
        return Response(content, response.status_code, headers=headers)

    meter = StreamMeter(endpoint, received, body["model"])

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                if await request.is_disconnected():
                    break
                meter.feed(chunk, time.perf_counter())
                yield chunk
        finally:
            await response.aclose()  # closes the upstream connection: llama-server cancels the task
            meter.finish(time.perf_counter())
            done()

    return StreamingResponse(relay(), response.status_code, headers=headers, media_type="text/event-stream")


def engine_error(status: int, content: bytes, path: str, model: str) -> ApiError:
    """The engine's error in OpenAI's shape, as every other error of the gateway: llama-server's own has an
    integer `code` and no `param`, and a proxy or a crashed engine may answer with no JSON at all.

    A 501 (llama-server without `--embeddings` asked for embeddings) is the model not being served for that
    endpoint here, a final answer: 404, which clients do not retry as they would a 5xx.
    """
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        error = {"message": content.decode("utf-8", errors="replace").strip()[:2000]}
    message = str(error.get("message") or f"the engine answered {status}")
    if status == 501:
        return ApiError(404, f"model '{model}' is not served for {path} here: {message}", "endpoint_not_supported")
    code = error.get("code")
    type_ = error.get("type")
    return ApiError(
        status,
        message,
        code if isinstance(code, str) else None,
        error.get("param") if isinstance(error.get("param"), str) else None,
        type_ if isinstance(type_, str) else ("server_error" if status >= 500 else "invalid_request_error"),
    )


@router.post("/chat/completions")
async def chat_completions(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/chat/completions", request, ctx)


@router.post("/completions")
async def completions(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/completions", request, ctx)


@router.post("/embeddings")
async def embeddings(request: Request, _project: Project, ctx: Ctx) -> Response:
    return await _proxy("/v1/embeddings", request, ctx)
