"""Client connections under a cap and deadlines, so idle or half-open sockets cannot exhaust the gateway.

uvicorn's h11 protocol arms no timer until a first response is sent, and its keep-alive timer is cancelled
by any byte received, so a connection that sends nothing, or a few bytes of a request head, stays open for
ever; enough of them exhaust the file descriptors and the gateway stops accepting anyone. Its own
`limit_concurrency` counts those idle sockets too and answers every real request 503. Here instead:

- a connection must send a complete request head within `header_timeout` of connecting, and again within
  it of each response (covering slow heads on a kept-alive connection); otherwise it is closed;
- at most `max_connections` are open: beyond that the connection idle the longest (no request running) is
  closed to make room, and only when every connection is busy is the new one refused with a 503;
- the listen backlog and the cap together stay below the process's file-descriptor limit less a reserve
  (`plan_limits`), and "socket.accept() out of system resource" is logged at most once per interval
  (`AcceptErrorLimiter`) rather than with a traceback thousands of times a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: Largest listen backlog asked for; uvicorn's default.
MAX_BACKLOG = 2048
#: The soft file-descriptor limit is raised towards the hard one, up to this.
FD_CEILING = 1 << 20
ACCEPT_ERROR = "socket.accept() out of system resource"


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    backlog: int
    fd_limit: int


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (capped); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_CEILING if hard == resource.RLIM_INFINITY else min(hard, FD_CEILING)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return FD_CEILING if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def plan_limits(fd_limit: int, max_connections: int, fd_reserve: int) -> ConnectionLimits:
    """Connections plus the backlog accepted in one burst stay within `fd_limit` less `fd_reserve`.

    asyncio accepts up to `backlog` sockets in one go before any protocol runs, so those need descriptors
    on top of the open connections.
    """
    usable = fd_limit - fd_reserve
    if usable < 16:
        raise ValueError(
            f"the file-descriptor limit {fd_limit} leaves fewer than 16 for client connections after the reserve "
            f"of {fd_reserve}: raise `ulimit -n` or lower KUBEINFER_GATEWAY__FD_RESERVE"
        )
    backlog = max(8, min(MAX_BACKLOG, usable // 4))
    return ConnectionLimits(max(8, min(max_connections, usable - backlog)), backlog, fd_limit)


def _refusal() -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": "the gateway has too many open connections; retry shortly",
                "type": "server_error",
                "param": None,
                "code": "too_many_connections",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap; see the module docstring.

    Use a subclass from `guarded_protocol`, which gives each server its own idle list and limits.
    """

    max_connections: ClassVar[int] = 4096
    header_timeout: ClassVar[float] = 10.0
    #: Connections with no request running, oldest first: the ones closed first at the cap.
    idle: ClassVar[OrderedDict[GuardedH11Protocol, None]]
    open_count: ClassVar[list[int]]

    _header_timer: asyncio.TimerHandle | None = None
    _counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(transport)
        if self.open_count[0] >= self.max_connections and not self._evict_idle():
            log.warning("connection refused: every connection is busy", extra={"limit": self.max_connections})
            transport.write(_refusal())
            transport.close()
            return
        self.open_count[0] += 1
        self._counted = True
        self._set_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._set_busy()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            self._release()
        elif self.cycle is None or self.cycle.response_complete:  # not already on a pipelined request
            self._set_idle()

    def _set_idle(self) -> None:
        self.idle[self] = None
        self.idle.move_to_end(self)
        self._cancel_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._head_overdue)

    def _set_busy(self) -> None:
        self.idle.pop(self, None)
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _head_overdue(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self._close()

    def _close(self) -> None:
        self._release()
        if not self.transport.is_closing():
            self.transport.close()

    def _release(self) -> None:
        """Stop counting this connection (once): it is closing, its descriptor is about to be freed."""
        self.idle.pop(self, None)
        self._cancel_timer()
        if self._counted:
            self._counted = False
            self.open_count[0] -= 1

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest to make room; False when every connection is busy."""
        while self.idle:
            oldest, _ = self.idle.popitem(last=False)
            if oldest is not self:
                oldest._close()
                return True
        return False


def guarded_protocol(max_connections: int, header_timeout: float) -> type[GuardedH11Protocol]:
    """A protocol class for one uvicorn server (`uvicorn.Config(http=...)`)."""
    attrs: dict[str, Any] = {
        "max_connections": max_connections,
        "header_timeout": header_timeout,
        "idle": OrderedDict(),
        "open_count": [0],
    }
    return type("GatewayH11Protocol", (GuardedH11Protocol,), attrs)


class AcceptErrorLimiter:
    """A loop exception handler that logs accept failures for want of descriptors at most once per interval.

    asyncio retries `accept()` for every pending connection and reports each failure with a traceback, which
    under a connection flood writes megabytes of log a second. Other errors go to the previous handler.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
        self.loop = loop
        self.interval = interval
        self.previous = loop.get_exception_handler()
        self.suppressed = 0
        self._last = -interval

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_ERROR:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        stamp = time.monotonic()
        if stamp - self._last < self.interval:
            self.suppressed += 1
            return
        self._last = stamp
        log.error(
            "cannot accept connections: out of file descriptors or memory",
            extra={"error": str(context.get("exception")), "suppressed_since_last": self.suppressed},
        )
        self.suppressed = 0


def limit_accept_errors(interval: float = 10.0) -> AcceptErrorLimiter:
    """Install the limiter on the running loop (the gateway's lifespan does, however it is served)."""
    loop = asyncio.get_running_loop()
    if isinstance(loop.get_exception_handler(), AcceptErrorLimiter):
        return loop.get_exception_handler()  # type: ignore[return-value]
    limiter = AcceptErrorLimiter(loop, interval)
    loop.set_exception_handler(limiter)
    return limiter
