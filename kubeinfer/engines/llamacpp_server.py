"""Lifecycle of one local llama-server: free port, launch, health, memory sampling, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from kubeinfer.engines.process import spawn, terminate


class ServerLoadError(RuntimeError):
    """The server exited or did not become healthy in time; the message carries its last log lines."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass
class ServerConfig:
    model_path: Path
    ctx_size: int = 8192
    parallel: int = 1
    threads: int | None = None
    gpu_layers: int = 0
    alias: str | None = None
    extra_args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    #: llama-server's host-memory prompt cache (MiB) grows RSS by up to 8 GiB by default; off, the server's
    #: memory is what sizing predicts. Prompt reuse within a slot (what prefix grouping relies on) still works.
    cache_ram_mib: int = 0
    port: int | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_args(config: ServerConfig, port: int) -> list[str]:
    """llama-server flags; shared with the operator's pod builder so both launch the engine alike."""
    args = [
        "--model",
        str(config.model_path),
        "--host",
        config.host,
        "--port",
        str(port),
        "--ctx-size",
        str(config.ctx_size),
        "--parallel",
        str(config.parallel),
        "--n-gpu-layers",
        str(config.gpu_layers),
        "--metrics",
        "--slots",
        "--cache-ram",
        str(config.cache_ram_mib),
    ]
    if config.threads:
        args += ["--threads", str(config.threads)]
    if config.alias:
        args += ["--alias", config.alias]
    return args + list(config.extra_args)


@dataclass
class MemorySample:
    t: float
    rss_bytes: int
    swap_bytes: int


def read_process_memory(pid: int) -> tuple[int, int, int]:
    """(current RSS, peak RSS, swap) in bytes from /proc; zeros when the process is gone."""
    fields = {"VmRSS": 0, "VmHWM": 0, "VmSwap": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return fields["VmRSS"], fields["VmHWM"], fields["VmSwap"]


class MemorySampler(threading.Thread):
    """Samples a process's RSS and swap every `interval` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name=f"memory-sampler-{pid}")
        self.pid = pid
        self.interval = interval
        self.samples: list[MemorySample] = []
        self.peak_rss_bytes = 0
        self._stop_event = threading.Event()
        self._start = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> MemorySample:
        rss, hwm, swap = read_process_memory(self.pid)
        self.peak_rss_bytes = max(self.peak_rss_bytes, hwm, rss)
        sample = MemorySample(time.monotonic() - self._start, rss, swap)
        self.samples.append(sample)
        return sample

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def max_swap_bytes(self) -> int:
        return max((s.swap_bytes for s in self.samples), default=0)


class LlamaServer:
    """One llama-server process. Use as a context manager so it is always stopped."""

    def __init__(self, binary: Path, config: ServerConfig, log_path: Path) -> None:
        self.binary = binary
        self.config = config
        self.log_path = log_path
        self.port = config.port or free_port(config.host)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sampler: MemorySampler | None = None
        self.load_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def start(self, timeout_seconds: float = 300.0) -> LlamaServer:
        """Launch and wait for `/health` to answer 200 (it answers 503 while the model loads)."""
        if not self.config.model_path.is_file():
            raise ServerLoadError(f"model file not found: {self.config.model_path}")
        started = time.monotonic()
        env = {**os.environ, "LLAMA_ARG_HOST": self.config.host}
        self.proc = spawn([str(self.binary), *server_args(self.config, self.port)], self.log_path, env=env)
        self.sampler = MemorySampler(self.proc.pid)
        self.sampler.start()
        deadline = started + timeout_seconds
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    self._stop_sampler()
                    raise ServerLoadError(f"llama-server exited with code {code} while loading:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerLoadError(
                        f"llama-server did not become healthy within {timeout_seconds:.0f}s:\n{self.log_tail()}",
                        timed_out=True,
                    )
                time.sleep(0.1)
        self.load_seconds = time.monotonic() - started
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.sample()
            self.sampler.stop()

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._stop_sampler()
        return terminate(self.proc, grace_seconds)

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
