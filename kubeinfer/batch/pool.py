"""Several replicas of one model server behind one `post`: prefix-aware routing, dead ones set aside.

A model server pod can die and come back at another address at any moment, so the list of endpoints is
refreshed from a caller-supplied function (EndpointSlices of the model's Service) and an endpoint that
failed is avoided for a short while; the caller's bounded retries then land on another replica. Which live
replica gets a request is kubeinfer.batch.routing's policy: the one that last served the request's prompt
prefix, else the rendezvous-hash choice, else the least-loaded one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubeinfer.batch import routing
from kubeinfer.batch.engine import EngineClient, EngineReply, TransientEngineError

Resolve = Callable[[], Awaitable[list[str]]]


class NoEndpoints(TransientEngineError):
    """No replica of the model is known right now."""


class EndpointPool:
    def __init__(
        self,
        resolve: Resolve,
        refresh_seconds: float = 3.0,
        quarantine_seconds: float = 2.0,
        timeout: float | None = None,
        prefix_routing: bool = True,
        slack: int = routing.DEFAULT_SLACK,
    ) -> None:
        """`timeout`: seconds one request may take (EngineClient's default when None); `prefix_routing`
        off sends every request to the least-loaded replica (the benchmark's baseline)."""
        self.resolve = resolve
        self.refresh_seconds = refresh_seconds
        self.quarantine_seconds = quarantine_seconds
        self.timeout = timeout
        self.prefix_routing = prefix_routing
        self.slack = slack
        self.affinity = routing.Affinity()
        self.clients: dict[str, EngineClient] = {}
        self.inflight: dict[str, int] = {}
        self.down_until: dict[str, float] = {}
        self._live: list[str] = []
        self._refreshed = 0.0
        self._lock = asyncio.Lock()

    def _client(self, url: str) -> EngineClient:
        return EngineClient(url) if self.timeout is None else EngineClient(url, timeout=self.timeout)

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
                        self.clients[url] = self._client(url)
                        self.inflight[url] = 0
                self._live = list(urls)
                self._refreshed = time.monotonic()
            return list(self._live)

    async def slots(self) -> int:
        """Parallel slots summed over the replicas known now."""
        urls = await self.refresh(force=True)
        counts = await asyncio.gather(*(self.clients[u].slots() for u in urls))
        return sum(counts)

    def choose(self, urls: list[str], body: Any) -> str:
        """The replica for `body` among `urls`; quarantined ones only when every replica is."""
        if len(urls) == 1:  # nothing to choose: the prompt is not even looked at
            return urls[0]
        now = time.monotonic()
        usable = [u for u in urls if self.down_until.get(u, 0.0) <= now] or urls
        if not self.prefix_routing:
            return routing.least_loaded(usable, self.inflight)
        key = routing.prefix_key(body)
        return routing.pick(key, usable, self.inflight, self.affinity.get(key), self.slack)

    async def acquire(self, body: Any) -> str:
        """Pick a replica for `body` and count the request in flight there until `release`."""
        urls = await self.refresh()
        if not urls:
            raise NoEndpoints("no ready replica of the model")
        url = self.choose(urls, body)
        self.inflight[url] = self.inflight.get(url, 0) + 1
        return url

    def release(self, url: str, body: Any, failed: bool = False) -> None:
        """End a request: a failed replica is quarantined and the replicas looked up again before the next."""
        self.inflight[url] = max(0, self.inflight.get(url, 0) - 1)
        if failed:
            self.down_until[url] = time.monotonic() + self.quarantine_seconds
            self._refreshed = 0.0
        elif self.prefix_routing:
            self.affinity.record(routing.prefix_key(body), url)

    async def post(self, path: str, body: dict[str, Any]) -> EngineReply:
        url = await self.acquire(body)
        failed = False
        try:
            return await self.clients[url].post(path, body)
        except TransientEngineError:
            failed = True
            raise
        finally:
            self.release(url, body, failed)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()


def single(engine: EngineClient) -> EndpointPool:
    """A pool of one engine that its caller owns and closes: the embedded gateway's llama-server.

    Its client is used as it is, so the caller's request deadline and readiness wait apply to every request.
    """

    async def resolve() -> list[str]:
        return [engine.base_url]

    pool = EndpointPool(resolve)
    pool.clients[engine.base_url] = engine
    pool.inflight[engine.base_url] = 0
    return pool
