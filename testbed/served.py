"""A server for tests, started, waited for and stopped: a child process until `/health` answers, or an ASGI app
in a thread of this process until uvicorn has started."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from kubeinfer.engines.llamacpp_server import free_port
from testbed.wait import wait_for


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60, interval: float = 0.2
) -> None:
    """Until GET `url`/health answers 200; fails with the tail of `log` as soon as the process exits."""

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=timeout, interval=interval)


def terminate(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGTERM, and SIGKILL when the process is still there after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def served(
    command: list[str], url: str, log: Path, *, timeout: float = 60, interval: float = 0.2, **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running with its output in `log`, healthy at `url`, until the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        wait_healthy(proc, url, log, timeout, interval)
        yield proc
    finally:
        terminate(proc)


@contextmanager
def serving_in_thread(app: ASGIApp, *, timeout: float = 30) -> Iterator[str]:
    """`app` served by uvicorn in a daemon thread of this process on a free loopback port, its base URL yielded
    once uvicorn has started, until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
