"""Several replicas of one model server behind one `post`: least requests in flight, dead ones set aside.

A model server pod can die and come back at another address at any moment, so the list of endpoints is
refreshed from a caller-supplied function (the worker reads the ModelInstall's status) and an endpoint that
failed is avoided for a short while; the caller's bounded retries then land on another replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubeinfer.batch.engine import EngineClient, EngineReply, TransientEngineError

Resolve = Callable[[], Awaitable[list[str]]]


class NoEndpoints(TransientEngineError):
    """No replica of the model is known right now."""


class EndpointPool:
    def __init__(self, resolve: Resolve, refresh_seconds: float = 3.0, quarantine_seconds: float = 2.0) -> None:
        self.resolve = resolve
        self.refresh_seconds = refresh_seconds
        self.quarantine_seconds = quarantine_seconds
        self.clients: dict[str, EngineClient] = {}
        self.inflight: dict[str, int] = {}
        self.down_until: dict[str, float] = {}
        self._live: list[str] = []
        self._refreshed = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> list[str]:
        async with self._lock:
            if force or time.monotonic() - self._refreshed >= self.refresh_seconds:
                urls = await self.resolve()
                for url in set(self.clients) - set(urls):
                    if not self.inflight.get(url):
                        await self.clients.pop(url).aclose()
                        self.inflight.pop(url, None)
                for url in urls:
                    if url not in self.clients:
                        self.clients[url] = EngineClient(url)
                        self.inflight[url] = 0
                self._live = list(urls)
                self._refreshed = time.monotonic()
            return list(self._live)

    async def slots(self) -> int:
        """Parallel slots summed over the replicas known now."""
        urls = await self.refresh(force=True)
        counts = await asyncio.gather(*(self.clients[u].slots() for u in urls))
        return sum(counts)

    def _pick(self, urls: list[str]) -> str:
        now = time.monotonic()
        usable = [u for u in urls if self.down_until.get(u, 0.0) <= now] or urls
        return min(usable, key=lambda u: self.inflight.get(u, 0))

    async def post(self, path: str, body: dict[str, Any]) -> EngineReply:
        urls = await self.refresh()
        if not urls:
            raise NoEndpoints("no ready replica of the model")
        url = self._pick(urls)
        self.inflight[url] = self.inflight.get(url, 0) + 1
        try:
            return await self.clients[url].post(path, body)
        except TransientEngineError:
            self.down_until[url] = time.monotonic() + self.quarantine_seconds
            self._refreshed = 0.0  # look the replicas up again before the next request
            raise
        finally:
            self.inflight[url] -= 1

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
