"""HTTP client of one OpenAI-compatible engine (llama-server), separating transient from final failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

#: Answers worth retrying: the server is loading, overloaded or restarting.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class TransientEngineError(RuntimeError):
    """The request may succeed if sent again (connection refused or reset, 5xx, 429, no answer by the deadline)."""


@dataclass(frozen=True)
class EngineReply:
    status_code: int
    body: Any
    request_id: str


class EngineClient:
    """One pooled async HTTP client for batch work and proxied single requests alike.

    `timeout` is the deadline of one `post`: a request with no answer by then (the engine hangs, is
    stopped, or is swamped) is abandoned and raises TransientEngineError naming the deadline, so callers
    retry it within their attempts or record that reason. `ready`, when given, is awaited first within
    the same deadline: the gateway passes its watchdog's `wait_running`, so requests wait out a restart
    of the managed server instead of spending their attempts on a closed port.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 600.0,
        max_connections: int = 256,
        ready: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"the request deadline must be greater than 0 seconds, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.ready = ready
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any]) -> EngineReply:
        try:
            async with asyncio.timeout(self.timeout):
                if self.ready is not None:
                    await self.ready()
                response = await self.http.post(path, json=body)
        except httpx.ConnectTimeout as exc:
            raise TransientEngineError(f"engine unreachable: {type(exc).__name__}: {exc}") from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientEngineError(f"no answer within {self.timeout:g} s (deadline)") from exc
        except httpx.TransportError as exc:
            raise TransientEngineError(f"engine unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code in TRANSIENT_STATUS:
            raise TransientEngineError(f"engine answered {response.status_code}: {response.text[:300]}")
        try:
            payload: Any = response.json()
        except ValueError:
            payload = {"error": {"message": response.text[:1000], "type": "engine_error"}}
        return EngineReply(response.status_code, payload, response.headers.get("x-request-id", ""))

    async def slots(self) -> int:
        """Parallel slots of the server (`/props` total_slots), 1 when it does not say."""
        try:
            response = await self.http.get("/props")
            return max(1, int(response.json().get("total_slots", 1)))
        except (httpx.HTTPError, ValueError, TypeError, AttributeError):
            return 1

    async def healthy(self) -> bool:
        try:
            return (await self.http.get("/health")).status_code == 200
        except httpx.HTTPError:
            return False
