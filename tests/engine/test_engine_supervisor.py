"""`kubeinfer engine serve`: the real llama-server under the memory supervisor, and its failure modes.

The supervisor runs as a subprocess through the CLI, as in a model server pod. Where a test needs a child
with exact behaviour (trap SIGTERM and exit 7, ignore SIGTERM) the child is a small Python script; every
figure about memory comes from the real llama-server with the real model.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.engines.llamacpp_server import free_port, read_process_memory
from kubeinfer.engines.supervisor import MemoryReadError, fetch_memory


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], memory_port: int, log: Path) -> None:
        self.proc = proc
        self.memory_url = f"http://127.0.0.1:{memory_port}/memory"
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*command: str, memory_port: int | None = None, options: tuple[str, ...] = ()) -> Served:
        port = memory_port or free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        cli = [sys.executable, "-m", "kubeinfer.cli.main", "engine", "serve", "--memory-port", str(port), *options]
        with log.open("wb") as out:
            proc = subprocess.Popen([*cli, "--", *command], stdout=out, stderr=subprocess.STDOUT)
        started.append(Served(proc, port, log))
        return started[-1]

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(timeout=30)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout}s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def python_child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(f"import os, signal, sys, time\nready = {str(tmp_path / 'ready')!r}\n{body}\n")
    return [sys.executable, str(script)]


def test_serve_reports_llama_servers_own_memory_and_stops_it_on_sigterm(
    serve: Callable[..., Served], engine_install: EngineInstall, smollm2_gguf: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    served = serve(
        str(engine_install.llama_server),
        *("--model", str(smollm2_gguf), "--port", str(port), "--ctx-size", "2048", "--threads", "2"),
    )
    wait_for(lambda: answers(f"{base}/health"), "llama-server healthy")
    reply = httpx.post(
        f"{base}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    figures = fetch_memory(served.memory_url)
    assert figures.running
    assert figures.pid != served.proc.pid
    assert Path(f"/proc/{figures.pid}/exe").resolve() == engine_install.llama_server.resolve()
    assert figures.samples >= 1
    assert figures.peak_rss_bytes >= figures.rss_bytes > 0
    assert figures.peak_rss_bytes > smollm2_gguf.stat().st_size
    assert figures.peak_rss_bytes <= read_process_memory(figures.pid)[1]
    with pytest.raises(MemoryReadError, match="did not answer memory figures"):
        fetch_memory(f"{base}/health")
    with pytest.raises(MemoryReadError, match="HTTP 404"):
        fetch_memory(served.memory_url.replace("/memory", "/metrics"))

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) == 0
    assert not Path(f"/proc/{figures.pid}").exists()
    output = served.output()
    assert "model loaded" in output
    assert "exited with code 0" in output
    with pytest.raises(MemoryReadError, match="cannot read server memory"):
        fetch_memory(served.memory_url)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--no-such-flag"], "--no-such-flag"), (["--model", "/nonexistent/model.gguf"], "/nonexistent/model.gguf")],
    ids=["bad-args", "missing-model"],
)
def test_serve_exits_with_llama_servers_code_when_it_fails_to_start(
    serve: Callable[..., Served], engine_install: EngineInstall, args: list[str], message: str
) -> None:
    port = str(free_port())
    direct = subprocess.run(
        [str(engine_install.llama_server), *args, "--port", port], capture_output=True, timeout=60, check=False
    )
    assert direct.returncode != 0
    served = serve(str(engine_install.llama_server), *args, "--port", port)
    assert served.proc.wait(timeout=60) == direct.returncode
    assert message in served.output()


def test_serve_forwards_sigterm_and_exits_with_the_childs_own_code(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    child = python_child(
        tmp_path,
        "def stop(*_):\n    open(ready + '.term', 'w').write('SIGTERM')\n    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\nopen(ready, 'w').close()\ntime.sleep(600)",
    )
    served = serve(*child)
    wait_for(lambda: (tmp_path / "ready").exists(), "child ready")
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 7
    assert (tmp_path / "ready.term").read_text() == "SIGTERM"


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    child = python_child(
        tmp_path, "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nopen(ready, 'w').close()\ntime.sleep(600)"
    )
    served = serve(*child, options=("--grace-seconds", "1"))
    wait_for(lambda: (tmp_path / "ready").exists(), "child ready")
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 128 + signal.SIGKILL


def test_a_child_killed_by_a_signal_reports_128_plus_the_signal(serve: Callable[..., Served], tmp_path: Path) -> None:
    served = serve(*python_child(tmp_path, "open(ready, 'w').close()\ntime.sleep(600)"))
    wait_for(lambda: (tmp_path / "ready").exists(), "child ready")
    figures = fetch_memory(served.memory_url)
    assert figures.running
    os.kill(figures.pid, signal.SIGKILL)
    assert served.proc.wait(timeout=30) == 128 + signal.SIGKILL


def test_an_engine_that_does_not_exist_fails_with_127(serve: Callable[..., Served]) -> None:
    served = serve("/nonexistent/llama-server", "--port", "1")
    assert served.proc.wait(timeout=30) == 127
    assert "cannot start /nonexistent/llama-server: not found or not executable" in served.output()


def test_a_memory_port_in_use_fails_before_the_engine_starts(serve: Callable[..., Served], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = serve(*python_child(tmp_path, "open(ready, 'w').close()"), memory_port=port)
        assert served.proc.wait(timeout=30) == 1
    assert f"memory port {port} on 127.0.0.1 is already in use" in served.output()
    assert not (tmp_path / "ready").exists()


def test_serve_without_an_engine_command_is_a_usage_error(serve: Callable[..., Served]) -> None:
    served = serve()
    assert served.proc.wait(timeout=30) == 2
    assert "Missing argument" in served.output()


# --- load times: a cold start on a side port, then the real one (a matrix's server pods) -------------------


def test_a_cold_start_times_both_loads_and_only_the_real_start_listens_on_the_port(
    serve: Callable[..., Served], engine_install: EngineInstall, smollm2_gguf: Path
) -> None:
    """The same model file is evicted (best effort: the session's shared server keeps it mapped) and loaded
    twice by the real llama-server: once on the cold port, stopped when healthy, then on its own port."""
    port, cold_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    served = serve(
        str(engine_install.llama_server),
        *("--model", str(smollm2_gguf), "--port", str(port), "--ctx-size", "2048", "--threads", "2"),
        options=(
            *("--health-url", f"{base}/health"),
            *("--cold-load", str(smollm2_gguf), "--cold-port", str(cold_port)),
        ),
    )
    wait_for(lambda: answers(f"{base}/health"), "llama-server healthy")
    wait_for(lambda: fetch_memory(served.memory_url).load_seconds is not None, "the warm load timed", timeout=10)
    figures = fetch_memory(served.memory_url)
    assert figures.cold_load_seconds is not None
    assert figures.cold_load_seconds > 0
    assert figures.load_seconds is not None
    assert figures.load_seconds > 0
    assert not answers(f"http://127.0.0.1:{cold_port}/health")
    output = served.output()
    # llama-server logs through a thread of its own: a server stopped right after its health answered may not
    # have written its later lines, so the count is of a line written long before it can be healthy.
    assert output.count("load_model: loading model") == 2, output
    assert f"cold start: {engine_install.llama_server} pid" in output
    assert f"cold start: healthy after {figures.cold_load_seconds:.3f}s, stopped" in output
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=60) == 0


def test_a_cold_start_that_fails_ends_the_supervisor_with_llama_servers_code(
    serve: Callable[..., Served], engine_install: EngineInstall, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.gguf"
    port = free_port()
    args = ("--model", str(missing), "--port", str(port))
    direct = subprocess.run([str(engine_install.llama_server), *args], capture_output=True, timeout=60, check=False)
    assert direct.returncode != 0
    served = serve(
        str(engine_install.llama_server),
        *args,
        options=("--health-url", f"http://127.0.0.1:{port}/health", "--cold-load", str(missing)),
    )
    assert served.proc.wait(timeout=60) == direct.returncode
    output = served.output()
    assert "page cache not evicted" in output
    assert f"exited with code {direct.returncode} before it was healthy" in output
    assert "memory on" not in output, "the real start must not follow a failed cold start"


def test_a_cold_start_without_a_health_url_is_a_usage_error(serve: Callable[..., Served], tmp_path: Path) -> None:
    served = serve(*python_child(tmp_path, "open(ready, 'w').close()"), options=("--cold-load", str(tmp_path)))
    assert served.proc.wait(timeout=30) == 2
    assert "a cold start is timed to the engine's health: give --health-url" in served.output()
    assert not (tmp_path / "ready").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [("localhost:8080/health", "must be an http:// or https:// URL with a host"), ("http://", "with a host")],
)
def test_a_health_url_that_is_not_an_http_url_is_a_usage_error(
    serve: Callable[..., Served], tmp_path: Path, url: str, message: str
) -> None:
    served = serve(*python_child(tmp_path, "open(ready, 'w').close()"), options=("--health-url", url))
    assert served.proc.wait(timeout=30) == 2
    assert message in served.output()
    assert not (tmp_path / "ready").exists()
