"""Run an engine as a child process and serve the child's memory on a side port (`GET /memory`).

In a cluster the measure Job runs in its own pod and cannot read the model server's `/proc`. The supervisor
is the server container's entrypoint instead: it starts the engine as its child, samples the child's memory
the way `LlamaServer` does on this machine, forwards SIGTERM and SIGINT to it and exits with its exit code,
so the pod's phase and exit code are still the engine's. The measure Job reads the figures over HTTP, and
rule 5 (memory trend) and the swap check see the same numbers in a cluster as locally.

With a `ColdStart` it also times the engine's loads as `kubeinfer bench run` does on one machine: the model
file evicted from the page cache, the engine started once on a side port until healthy and stopped (the
cold load), then started for real (the warm load). Only the second one listens on the pod's port, so the
pod is Ready once, when the server the measure Job needs is up.
"""

from __future__ import annotations

import errno
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from kubeinfer.bench import page_cache
from kubeinfer.engines.llamacpp_server import read_process_memory
from kubeinfer.engines.process import spawn, terminate

MEMORY_PATH = "/memory"
DEFAULT_INTERVAL_SECONDS = 0.5
#: A shell's codes for a command that is not there or cannot be executed; Kubernetes users know them.
NOT_FOUND, NOT_EXECUTABLE = 127, 126
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SupervisorError(RuntimeError):
    """The supervisor could not start its child or its memory endpoint; `exit_code` is the process's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class MemoryReadError(RuntimeError):
    """`GET /memory` failed or answered something that is not a supervisor's memory figures."""


class MemoryFigures(BaseModel):
    """What `GET /memory` answers: the child's memory now and the most it has used since it started, and
    its load times where the supervisor timed them (`--health-url`, `--cold-load`)."""

    pid: int
    running: bool
    rss_bytes: int
    peak_rss_bytes: int
    swap_bytes: int
    max_swap_bytes: int
    samples: int
    interval_seconds: float
    cold_load_seconds: float | None = None
    load_seconds: float | None = None

    @classmethod
    def unsampled(cls, pid: int, interval: float, running: bool) -> MemoryFigures:
        return cls(
            pid=pid,
            running=running,
            rss_bytes=0,
            peak_rss_bytes=0,
            swap_bytes=0,
            max_swap_bytes=0,
            samples=0,
            interval_seconds=interval,
        )


class MemoryTracker(threading.Thread):
    """Samples a process every `interval` seconds and on demand, keeping current, peak and maximum swap.

    Unlike `MemorySampler` it keeps no list of samples, so a server supervised for days uses constant memory.
    The peak is the kernel's high-water mark (VmHWM), so it is exact between samples too.
    """

    def __init__(self, pid: int, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        super().__init__(daemon=True, name=f"memory-tracker-{pid}")
        self.interval = interval
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._figures = MemoryFigures.unsampled(pid, interval, running=True)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> MemoryFigures:
        """Read the process now (while it runs) and return the updated figures."""
        with self._lock:
            current = self._figures
            if current.running:
                rss, hwm, swap = read_process_memory(current.pid)
                current = current.model_copy(
                    update={
                        "rss_bytes": rss,
                        "peak_rss_bytes": max(current.peak_rss_bytes, hwm, rss),
                        "swap_bytes": swap,
                        "max_swap_bytes": max(current.max_swap_bytes, swap),
                        "samples": current.samples + 1,
                    }
                )
                self._figures = current
            return current

    def finish(self) -> None:
        """Take a last sample and stop; the figures then stay as they were when the child ended."""
        self.sample()
        self._stop_event.set()
        with self._lock:
            self._figures = self._figures.model_copy(update={"running": False, "rss_bytes": 0, "swap_bytes": 0})


def memory_server(host: str, port: int, figures: Callable[[], MemoryFigures]) -> ThreadingHTTPServer:
    """Bind the memory endpoint now, so a port already in use fails before the engine starts."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?", 1)[0] != MEMORY_PATH:
                self._send(404, {"error": f"not found; the supervisor serves only GET {MEMORY_PATH}"})
                return
            self._send(200, figures().model_dump())

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 (http.server's signature)
            return None

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SupervisorError(f"memory port {port} on {host} is already in use") from exc
        raise SupervisorError(f"cannot serve memory on {host}:{port}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class ColdStart:
    """Start the engine once with its model file evicted from the page cache, on `port`, and time it."""

    model: Path
    #: Appended to the engine's arguments for the cold start; llama-server takes the last `--port` given.
    port: int
    timeout_seconds: float = 600.0


HEALTH_POLL_SECONDS = 0.1


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float, stop: threading.Event) -> float | None:
    """Seconds until `url` answers 200, polled every 0.1 s; None when the child exits or `stop` is set first.

    Raises TimeoutError after `timeout` seconds.
    """
    started = time.monotonic()
    with httpx.Client(timeout=2.0) as client:
        while proc.poll() is None and not stop.is_set():
            if _answers(client, url):
                return round(time.monotonic() - started, 3)
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")
            stop.wait(HEALTH_POLL_SECONDS)
    return None


def _answers(client: httpx.Client, url: str) -> bool:
    """Whether `url` answers 200 now; a refused connection is an engine still starting."""
    try:
        return client.get(url).status_code == 200
    except httpx.TransportError:
        return False


def checked_health_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; otherwise a usage error naming it."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise SupervisorError(f"--health-url {url!r} is not a URL: {exc}", exit_code=2) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SupervisorError(f"--health-url {url!r} must be an http:// or https:// URL with a host", exit_code=2)
    return url


def exit_status(returncode: int) -> int:
    """A child killed by signal N reports 128+N, as a shell and the kubelet do."""
    return returncode if returncode >= 0 else 128 - returncode


@contextmanager
def forwarded_signals() -> Iterator[threading.Event]:
    """Turn SIGTERM and SIGINT into an event for the main loop; previous handlers come back afterwards."""
    requested = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED_SIGNALS}
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Supervisor:
    """One engine child plus its memory endpoint; `run()` blocks until the child ends and returns the exit code.

    Call `run()` from the main thread: signal handlers can only be installed there, and the child's
    parent-death signal follows the thread that spawned it.
    """

    def __init__(
        self,
        command: list[str],
        memory_port: int,
        memory_host: str = "127.0.0.1",
        interval: float = DEFAULT_INTERVAL_SECONDS,
        grace_seconds: float = 10.0,
        log: Callable[[str], None] = lambda _message: None,
        health_url: str | None = None,
        cold_start: ColdStart | None = None,
    ) -> None:
        if not command:
            raise SupervisorError("no engine command given; put it after `--`", exit_code=2)
        if cold_start is not None and health_url is None:
            raise SupervisorError("a cold start is timed to the engine's health: give --health-url", exit_code=2)
        self.command = command
        self.memory_port = memory_port
        self.memory_host = memory_host
        self.interval = interval
        self.grace_seconds = grace_seconds
        self.log = log
        self.health_url = checked_health_url(health_url) if health_url is not None else None
        self.cold_start = cold_start
        self.tracker: MemoryTracker | None = None
        self.loads: dict[str, float | None] = {"cold_load_seconds": None, "load_seconds": None}

    def run(self) -> int:
        server = memory_server(self.memory_host, self.memory_port, self._figures)
        serving = threading.Thread(target=server.serve_forever, daemon=True, name="memory-endpoint")
        serving.start()
        try:
            with forwarded_signals() as stop_requested:
                if self.cold_start is not None:
                    failed = self._cold(self.cold_start, stop_requested)
                    if failed is not None:
                        return failed
                proc = self._start(self.command)
                self.tracker = MemoryTracker(proc.pid, self.interval)
                self.tracker.start()
                self.log(f"{self.command[0]} pid {proc.pid}; memory on {self.memory_host}:{self.memory_port}")
                if self.health_url is not None:
                    self._time_load(self.health_url, proc, stop_requested)
                code = self._wait(proc, stop_requested)
                self.tracker.finish()
        finally:
            server.shutdown()
            server.server_close()
        self.log(f"{self.command[0]} exited with code {code}")
        return code

    def _cold(self, cold: ColdStart, stop_requested: threading.Event) -> int | None:
        """Evict the model, start the engine on the side port until healthy, stop it; an exit code if it failed.

        A cold start that exits or never gets healthy is the server's load failure: the supervisor exits
        with the engine's code (or 1), so the pod fails as a failed warm start would.
        """
        if why_not_cold := page_cache.evict_for_cold_load(cold.model):
            self.log(why_not_cold)
        assert self.health_url is not None
        health = _with_port(self.health_url, cold.port)
        proc = self._start([*self.command, "--port", str(cold.port)])
        self.log(f"cold start: {self.command[0]} pid {proc.pid} on port {cold.port}")
        try:
            seconds = wait_healthy(health, proc, cold.timeout_seconds, stop_requested)
        except TimeoutError as exc:
            terminate(proc, self.grace_seconds)
            self.log(f"cold start failed: {exc}")
            return 1
        if seconds is None:
            code = exit_status(terminate(proc, self.grace_seconds))
            if stop_requested.is_set():
                self.log(f"stopped during the cold start; {self.command[0]} exited with code {code}")
                return code
            self.log(f"cold start: {self.command[0]} exited with code {code} before it was healthy")
            return code if code else 1
        terminate(proc, self.grace_seconds)
        self.loads["cold_load_seconds"] = seconds
        self.log(f"cold start: healthy after {seconds:.3f}s, stopped")
        return None

    def _time_load(self, url: str, proc: subprocess.Popen[bytes], stop_requested: threading.Event) -> None:
        def timed() -> None:
            self.loads["load_seconds"] = wait_healthy(url, proc, float("inf"), stop_requested)

        threading.Thread(target=timed, daemon=True, name="load-timer").start()

    def _start(self, command: list[str]) -> subprocess.Popen[bytes]:
        executable = command[0]
        if shutil.which(executable) is None:
            raise SupervisorError(f"cannot start {executable}: not found or not executable", exit_code=NOT_FOUND)
        try:
            return spawn(command, None)
        except OSError as exc:
            raise SupervisorError(f"cannot start {executable}: {exc}", exit_code=NOT_EXECUTABLE) from exc

    def _wait(self, proc: subprocess.Popen[bytes], stop_requested: threading.Event) -> int:
        while (code := proc.poll()) is None:
            if stop_requested.wait(0.1):
                self.log(f"stopping {self.command[0]} (SIGTERM, then SIGKILL after {self.grace_seconds:.0f}s)")
                code = terminate(proc, self.grace_seconds)
                break
        return exit_status(code)

    def _figures(self) -> MemoryFigures:
        if self.tracker is None:
            figures = MemoryFigures.unsampled(0, self.interval, running=False)
        else:
            figures = self.tracker.sample()
        return figures.model_copy(update=self.loads)


def _with_port(url: str, port: int) -> str:
    return str(httpx.URL(url).copy_with(port=port))


def fetch_memory(url: str, timeout: float = 10.0) -> MemoryFigures:
    """Read a supervisor's `GET /memory`; MemoryReadError says why it could not."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise MemoryReadError(f"cannot read server memory from {url}: {exc}") from exc
    if response.status_code != 200:
        raise MemoryReadError(
            f"cannot read server memory from {url}: HTTP {response.status_code} {response.text[:200]}"
        )
    try:
        return MemoryFigures.model_validate_json(response.content)
    except ValidationError as exc:
        raise MemoryReadError(f"{url} did not answer memory figures: {exc.errors()[0]['msg']}") from exc
