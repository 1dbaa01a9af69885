"""A counting reverse proxy in front of kube-apiserver: every request one client makes, by verb and resource.

The operator scale benchmark points only the operator's kubeconfig at it, so the counts are the operator's
own API calls, counted one by one (a watch counts once, however long it streams). It listens on plain HTTP
on loopback and forwards to the apiserver over TLS, verifying the apiserver's CA; the client's bearer token
passes through untouched, so the apiserver still authenticates and authorizes the operator's ServiceAccount.

`GET /_proxy/counts` answers the counts so far as JSON; that path never reaches the apiserver.
Run: `python -m perf.apiproxy --upstream https://127.0.0.1:6443 --ca ca.crt` (prints its port on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

COUNTS_PATH = "/_proxy/counts"
#: Headers that describe one hop, not the message (RFC 9110 section 7.6.1), plus those aiohttp recomputes.
HOP_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
#: Sent only when the client sent them: aiohttp would add `Content-Type: application/octet-stream` to a body
#: without one, which the apiserver refuses (415) where it reads a missing type as JSON.
NO_AUTO_HEADERS = ("Content-Type", "User-Agent", "Accept", "Accept-Encoding")
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def classify(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """(verb, resource) of one request in the apiserver's own terms, e.g. ("watch", "batch/jobs").

    Non-resource paths (/api, /apis, /version, /openapi) are ("get", "discovery").
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return method.lower(), "discovery"
    if not rest:
        return method.lower(), "discovery"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    kind = f"{group}/{resource}" if group else resource
    if sub:
        kind = f"{kind}/{sub}"
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = "get" if name else "list"
    elif method == "DELETE" and name is None:
        verb = "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return verb, kind


@dataclass
class Tally:
    """Requests by (verb, resource), by response status class, and the non-2xx answers by call and status."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def answered(self, verb: str, resource: str, status: int) -> None:
        self.statuses[f"{status // 100}xx"] += 1
        if status >= 300:
            self.refused[f"{verb} {resource} {status}"] += 1

    def add(self, verb: str, resource: str) -> None:
        self.requests[(verb, resource)] += 1

    def as_json(self) -> dict[str, Any]:
        by_verb: Counter[str] = Counter()
        for (verb, _), n in self.requests.items():
            by_verb[verb] += n
        return {
            "total": sum(self.requests.values()),
            "by_verb": dict(sorted(by_verb.items())),
            "by_call": {f"{verb} {res}": n for (verb, res), n in sorted(self.requests.items())},
            "by_status": dict(sorted(self.statuses.items())),
            "non_2xx": dict(sorted(self.refused.items())),
        }


def make_app(upstream: str, ssl_context: ssl.SSLContext | None, tally: Tally) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def open_session(_: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
        connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else False, limit=0)
        session["s"] = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False)

    async def close_session(_: web.Application) -> None:
        await session["s"].close()

    async def counts(_: web.Request) -> web.Response:
        return web.json_response(tally.as_json())

    async def forward(request: web.Request) -> web.StreamResponse:
        verb, resource = classify(request.method, request.path, dict(request.query))
        tally.add(verb, resource)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        async with session["s"].request(
            request.method,
            upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=NO_AUTO_HEADERS,
        ) as upstream_response:
            tally.answered(verb, resource, upstream_response.status)
            response = web.StreamResponse(status=upstream_response.status, reason=upstream_response.reason)
            for key, value in upstream_response.headers.items():
                if key.lower() not in HOP_HEADERS:
                    response.headers.add(key, value)
            await response.prepare(request)
            try:
                async for chunk in upstream_response.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionError):
                pass  # the client closed a watch; nothing left to relay
            return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_get(COUNTS_PATH, counts)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, ca: Path | None, host: str, port: int) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    runner = web.AppRunner(make_app(upstream.rstrip("/"), context, Tally()), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    print(bound, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="The apiserver's https URL")
    parser.add_argument("--ca", type=Path, help="CA bundle the apiserver's certificate is checked against")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.upstream, args.ca, args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
