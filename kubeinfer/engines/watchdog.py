"""Keep the gateway's own llama-server alive: restart it, with back-off, when it exits or stops answering.

The watchdog owns the process. A background task checks every `check_seconds` that the process lives and
that `/health` answers 200. A process that exits is started again after a back-off delay (1 s doubling to
30 s by default; a server that ran healthy for `stable_seconds` starts the schedule over, as the kubelet
does). A process that lives but leaves `/health` unanswered for `hang_seconds` (stopped with SIGSTOP,
deadlocked, swapped to death) is marked `hung`, killed with SIGKILL and started again the same way.

Every start uses the same port, so the base URL that clients hold stays valid across restarts and the
gateway's one `EngineClient` needs no update; `wait_running` lets that client hold a request while the
server is down instead of spending its retries on a closed port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from kubeinfer.engines.llamacpp_server import ServerConfig, free_port, read_process_memory, server_args
from kubeinfer.engines.process import spawn, terminate
from kubeinfer.metrics import engine as metrics

log = logging.getLogger(__name__)

STATES = ("starting", "running", "hung", "backoff", "stopped")


@dataclass(frozen=True)
class ServerState:
    """A snapshot of the managed server, for the console, the ops CLI and the gateway's 503 answers."""

    name: str
    model: str
    state: str  # starting | running | hung | backoff | stopped
    pid: int | None
    url: str
    restarts: int
    #: Unix time of the last healthy `/health`.
    last_heartbeat: float | None
    rss_bytes: int | None
    #: Why the previous process ended (exit code or signal, hang, load timeout), with its last log lines.
    last_exit: str | None
    log_path: Path


@dataclass(frozen=True)
class WatchdogConfig:
    check_seconds: float = 1.0
    hang_seconds: float = 30.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 30.0
    #: A server healthy this long before it failed restarts after `backoff_seconds` again.
    stable_seconds: float = 60.0
    #: Loading the model must finish within this; a larger model needs more.
    start_timeout_seconds: float = 600.0
    #: A requested restart lets the server finish this long after SIGTERM before SIGKILL.
    stop_grace_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "check_seconds",
            "hang_seconds",
            "backoff_seconds",
            "backoff_max_seconds",
            "stable_seconds",
            "start_timeout_seconds",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"watchdog {name} must be greater than 0, got {value}")
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError(
                f"watchdog backoff_max_seconds ({self.backoff_max_seconds}) must be at least "
                f"backoff_seconds ({self.backoff_seconds})"
            )
        if self.hang_seconds < self.check_seconds:
            raise ValueError(
                f"watchdog hang_seconds ({self.hang_seconds}) must be at least check_seconds "
                f"({self.check_seconds}): a hang is noticed by missed checks"
            )


class Backoff:
    """Delays before restarts: `initial` doubling up to `maximum`; a stable run starts the schedule over."""

    def __init__(self, initial: float, maximum: float, stable_seconds: float) -> None:
        self.initial, self.maximum, self.stable_seconds = initial, maximum, stable_seconds
        self.failures = 0

    def next_delay(self, healthy_seconds: float) -> float:
        """The delay after a failure of a server that had been healthy for `healthy_seconds` (0: never)."""
        if healthy_seconds >= self.stable_seconds:
            self.failures = 0
        delay: float = min(self.maximum, self.initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return delay


@dataclass(frozen=True)
class Failure:
    """Why a process is being replaced: `kind` is a metric label (RESTART_REASONS), `message` is for people."""

    kind: str
    message: str
    healthy_seconds: float = 0.0


@dataclass(frozen=True)
class RestartEvent:
    at: float  # monotonic
    reason: str
    delay_seconds: float


class ServerWatchdog:
    """One llama-server, kept running. `start()` in the event loop that will use it; `stop()` ends it for good."""

    def __init__(
        self,
        binary: Path,
        config: ServerConfig,
        log_path: Path,
        *,
        model: str | None = None,
        name: str = "llama-server",
        watchdog: WatchdogConfig | None = None,
    ) -> None:
        self.binary = binary
        self.config = replace(config, port=config.port or free_port(config.host))
        self.log_path = log_path
        self.settings = watchdog or WatchdogConfig()
        self.url = f"http://{self.config.host}:{self.config.port}"
        #: The last restarts with their reasons and the back-off delay before each, oldest first.
        self.history: deque[RestartEvent] = deque(maxlen=100)
        model_name = model or self.config.alias or self.config.model_path.stem
        self._state = ServerState(name, model_name, "stopped", None, self.url, 0, None, None, None, log_path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._requested: str | None = None
        self._wake = asyncio.Event()
        self._running = asyncio.Event()
        self._settled = asyncio.Event()
        self._launched = asyncio.Event()

    # --- interface ------------------------------------------------------------------------------------------
    def state(self) -> ServerState:
        current = self._state
        if current.pid is None or current.state == "stopped":
            return current
        rss = read_process_memory(current.pid)[0]
        return replace(current, rss_bytes=rss or None)

    async def start(self) -> None:
        """Launch the server; return once it is healthy or its first start failed (it is then retried)."""
        if self._task is not None:
            raise RuntimeError("the watchdog was already started")
        self._task = asyncio.create_task(self._supervise(), name=f"watchdog-{self._state.name}")
        settled = asyncio.create_task(self._settled.wait())
        await asyncio.wait({self._task, settled}, return_when=asyncio.FIRST_COMPLETED)
        settled.cancel()
        if self._task.done():
            self._task.result()  # an unexpected error of the supervising task surfaces here

    async def stop(self) -> None:
        """Stop supervising and stop the server (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        await self._end_process(graceful=True)
        self._running.clear()
        self._set(state="stopped", pid=None)

    async def restart(self, reason: str) -> None:
        """Replace the server now, without back-off; returns once the new process has been launched."""
        task = self._task
        if task is None or task.done():
            raise RuntimeError("the watchdog is not running; start it first")
        launched = asyncio.create_task(self._launched.wait())
        self._requested = reason or "requested"
        self._wake.set()
        await asyncio.wait({launched, task}, return_when=asyncio.FIRST_COMPLETED)  # or stop() ended it
        launched.cancel()

    async def wait_running(self, within_seconds: float | None = None) -> bool:
        """Wait until the server is healthy; False when `within_seconds` passed first (None: no limit)."""
        try:
            async with asyncio.timeout(within_seconds):
                await self._running.wait()
        except TimeoutError:
            return False
        return True

    # --- supervision ----------------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = Backoff(
            self.settings.backoff_seconds, self.settings.backoff_max_seconds, self.settings.stable_seconds
        )
        timeout = min(self.settings.hang_seconds, max(1.0, self.settings.check_seconds))
        reason: str | None = None
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False) as http:
            while not self._stopping:
                failure = await self._run_once(http, reason)
                self._settled.set()
                if failure is None or self._stopping:
                    break
                requested = failure.kind == "requested"
                delay = 0.0 if requested else backoff.next_delay(failure.healthy_seconds)
                self.history.append(RestartEvent(time.monotonic(), failure.message, delay))
                metrics.RESTARTS.labels(failure.kind).inc()
                self._set(state="starting" if requested else "backoff", pid=None, last_exit=failure.message)
                log.warning(
                    "llama-server restarting",
                    extra={"reason": failure.message, "delay_seconds": delay, "restarts": self._state.restarts + 1},
                )
                reason = failure.message
                if not requested:
                    await self._pause(delay)
                if self._requested is not None:  # asked during the back-off: start now, for that reason
                    reason, self._requested = self._requested, None

    async def _run_once(self, http: httpx.AsyncClient, reason: str | None) -> Failure | None:
        """Launch one process and watch it; the Failure says why it must be replaced (None: stopping)."""
        try:
            proc = self._launch(reason)
        except OSError as exc:
            return Failure("spawn_failed", f"cannot start {self.binary}: {exc}")
        started = time.monotonic()
        healthy_since: float | None = None
        last_ok = started
        while True:
            code = proc.poll()
            if code is not None:
                await self._end_process(graceful=False)
                healthy = time.monotonic() - healthy_since if healthy_since is not None else 0.0
                if healthy_since is None:
                    return Failure("exited", f"{_exit_text(code)} while loading{self._log_tail()}")
                tail = self._log_tail() if code > 0 else ""
                return Failure("exited", f"{_exit_text(code)}{tail}", healthy)
            if self._stopping:
                return None
            if self._requested is not None:
                reason, self._requested = self._requested, None
                self._running.clear()
                await self._end_process(graceful=True)
                return Failure("requested", f"restart requested: {reason}")
            ok = await self._healthy(http)
            now = time.monotonic()
            if ok:
                last_ok = now
                if healthy_since is None:
                    healthy_since = now
                    log.info("llama-server healthy", extra={"pid": proc.pid, "load_seconds": now - started})
                self._set(state="running", last_heartbeat=time.time())
                self._running.set()
                self._settled.set()
            elif healthy_since is None and now - started > self.settings.start_timeout_seconds:
                await self._end_process(graceful=False)
                limit = self.settings.start_timeout_seconds
                return Failure("start_timeout", f"not healthy within {limit:g} s of starting{self._log_tail()}")
            elif healthy_since is not None and now - last_ok >= self.settings.hang_seconds:
                silent = now - last_ok
                self._set(state="hung")
                self._running.clear()
                log.warning("llama-server hung", extra={"pid": proc.pid, "silent_seconds": silent})
                await self._end_process(graceful=False)
                message = f"hung: /health unanswered for {silent:.1f} s (hang_seconds {self.settings.hang_seconds:g})"
                return Failure("hung", f"{message}; killed with SIGKILL", now - healthy_since)
            await self._pause(self.settings.check_seconds)

    def _launch(self, reason: str | None) -> subprocess.Popen[bytes]:
        """Spawn from the event loop's thread: the child's parent-death signal follows the spawning thread."""
        restarts = self._state.restarts + (1 if reason is not None else 0)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if reason is not None:
            with self.log_path.open("a") as out:
                out.write(f"--- kubeinfer watchdog: restart {restarts}: {reason.splitlines()[0]}\n")
        env = {**os.environ, "LLAMA_ARG_HOST": self.config.host}
        assert self.config.port is not None
        command = [str(self.binary), *server_args(self.config, self.config.port)]
        self._running.clear()
        self._set(state="starting", pid=None, restarts=restarts)
        self._proc = spawn(command, self.log_path, env=env)
        self._set(pid=self._proc.pid)
        log.info("llama-server started", extra={"pid": self._proc.pid, "url": self.url, "restarts": restarts})
        self._launched.set()
        self._launched = asyncio.Event()
        return self._proc

    async def _healthy(self, http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get("/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _end_process(self, graceful: bool) -> None:
        """Stop the current process (graceful: SIGTERM first; else SIGKILL, which also ends a stopped one)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not graceful and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.to_thread(terminate, proc, self.settings.stop_grace_seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep, waking early for `restart()` or `stop()`."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    def _set(self, **changes: object) -> None:
        self._state = replace(self._state, **changes)  # type: ignore[arg-type]

    def _log_tail(self, lines: int = 4) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        text = " | ".join(line.strip() for line in tail if line.strip())
        return f": {text[-600:]}" if text else ""


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
