"""Idle and half-open connections cannot lock the gateway out: a cap, a request-head deadline, quiet logs.

The gateway runs as `python -m kubeinfer.gateway` with a file-descriptor limit of 512 (hard, so it cannot
raise it), and the test opens four times as many connections that never finish a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.gateway.connections import ACCEPT_ERROR, AcceptErrorLimiter, plan_limits
from testbed.served import served
from testbed.wait import wait_for

KEY = "sk-conn"
GATEWAY_FDS = 512
FLOOD = 4 * GATEWAY_FDS
HEADER_TIMEOUT = 3


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (GATEWAY_FDS, GATEWAY_FDS))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "gateway.log"
    env = {
        **os.environ,
        "KUBEINFER_GATEWAY__API_KEYS": f"{KEY}=flood",
        "KUBEINFER_GATEWAY__HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    }
    command = [sys.executable, "-m", "kubeinfer.gateway", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    command += ["--engine-url", "http://127.0.0.1:9", "--log-level", "info"]
    url = f"http://127.0.0.1:{port}"
    with served(command, url, log, env=env, preexec_fn=_limit_fds) as proc:
        yield url, proc, log


def _open_flood(port: int, count: int) -> list[socket.socket]:
    """`count` connections: half send nothing, half the start of a request head and no more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 256
    if soft < need:
        assert hard >= need, f"this test needs {need} file descriptors; the hard limit is {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    socks = []
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        socks.append(sock)
        if i % 64 == 63:  # let the gateway drain its listen queue, so the flood reaches it rather than the kernel
            time.sleep(0.01)
        if i % 2:
            with contextlib.suppress(OSError):
                sock.send(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return socks


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset, or a connect the server never accepted before it was given up
        return True


@pytest.mark.slow
def test_thousands_of_idle_connections_do_not_lock_the_gateway_out(
    gateway: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, proc, log = gateway
    port = int(url.rsplit(":", 1)[1])
    log_before = log.stat().st_size
    baseline = _fds(proc.pid)
    socks = _open_flood(port, FLOOD)
    try:
        for _ in range(5):
            reply = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
            assert reply.status_code == 200
            assert reply.json()["object"] == "list"
        assert proc.poll() is None
        assert _fds(proc.pid) < GATEWAY_FDS

        # every connection the gateway accepted ends: closed to make room, or at the request-head deadline
        # (those the kernel dropped from the full listen queue never reached it and hold nothing there)
        wait_for(lambda: _fds(proc.pid) <= baseline + 4, timeout=HEADER_TIMEOUT + 60, interval=0.5)
        closed = sum(_closed_by_server(s) for s in socks)
        cap = plan_limits(GATEWAY_FDS, 4096, 256).max_connections
        assert closed > cap, "the flood must have gone beyond the connection cap"
        reply = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert reply.status_code == 200
    finally:
        for s in socks:
            s.close()
    grown = log.stat().st_size - log_before
    assert grown < 64 * 1024, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


def test_limits_leave_room_for_the_accept_burst_and_the_reserve() -> None:
    limits = plan_limits(512, 4096, 256)
    assert limits.max_connections + limits.backlog <= 512 - 256
    assert plan_limits(1 << 20, 4096, 256).max_connections == 4096
    with pytest.raises(ValueError, match="ulimit -n"):
        plan_limits(200, 4096, 256)


def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        limiter = AcceptErrorLimiter(loop, interval=3600)
        with caplog.at_level(logging.ERROR, logger="kubeinfer.gateway.connections"):
            for _ in range(10_000):
                limiter(loop, {"message": ACCEPT_ERROR, "exception": OSError(24, "Too many open files")})
        assert len(caplog.records) == 1
        assert limiter.suppressed == 9_999
    finally:
        loop.close()


@pytest.mark.slow
def test_header_deadline_closes_a_connection_that_trickles_its_head(
    gateway: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    url, _, _ = gateway
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
        started = time.monotonic()
        closed = False
        # a byte a second never completes a head; the keep-alive timer alone would be reset by each byte
        for _ in range(HEADER_TIMEOUT * 10):
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            sock.settimeout(1)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed, f"still open after {time.monotonic() - started:.0f} s"
