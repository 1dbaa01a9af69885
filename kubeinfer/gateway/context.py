"""What every route needs from the running gateway, injected as one dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from kubeinfer.batch.engine import EngineClient
from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.service import BatchService
from kubeinfer.engines.watchdog import ServerWatchdog
from kubeinfer.gateway.auth import KeyRing
from kubeinfer.settings import Settings
from kubeinfer.storage.files import FileService
from kubeinfer.storage.records import MetadataStore


@dataclass
class GatewayContext:
    settings: Settings
    keys: KeyRing
    meta: MetadataStore
    files: FileService
    batches: BatchService
    engine: EngineClient
    #: Model names this gateway serves, mapped to their creation time.
    models: dict[str, int] = field(default_factory=dict)
    #: The managed llama-server's keeper; None when the gateway uses an external `engine_url`.
    watchdog: ServerWatchdog | None = None
    #: Cluster mode: one pool of replicas per ModelInstall-served model (kubeinfer.gateway.inference).
    pools: dict[str, EndpointPool] = field(default_factory=dict)


def _ctx(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.ctx
    return ctx


Ctx = Annotated[GatewayContext, Depends(_ctx)]
