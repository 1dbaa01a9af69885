"""The embedded gateway's watchdog and request deadline, caused for real.

Each test runs the gateway in this process (uvicorn in a thread) with a managed llama-server serving the
real SmolLM2 model, then kills the server (SIGKILL), stops it (SIGSTOP) or hands it a corrupt model, and
checks what the watchdog, the batch runner and the API do about it. Waits are on conditions, never fixed.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from kubeinfer.engines.llamacpp_build import EngineInstall
from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.engines.watchdog import ServerWatchdog
from kubeinfer.gateway.app import create_app
from kubeinfer.settings import GatewaySettings, Settings
from testbed.wait import wait_for

MODEL = "smollm2-135m"
KEY = "sk-watchdog"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
#: Requests of the batches the server dies under: the kill waits for 3 answers, so up to 9 are still to come
#: when it lands (4 in flight: the batch sends 2 per slot), and each of them must be answered by the restarted server.
BATCH_REQUESTS = 12
#: Answers before the kill: the batch is running, most of it still to come.
ANSWERED_BEFORE_KILL = 3


class Gateway:
    def __init__(self, app: FastAPI, url: str) -> None:
        self.app, self.url = app, url
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)

    @property
    def watchdog(self) -> ServerWatchdog:
        watchdog = self.app.state.ctx.watchdog
        assert isinstance(watchdog, ServerWatchdog)
        return watchdog

    def submit(self, lines: list[dict[str, Any]]) -> str:
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        file = self.client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
        return self.client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id

    def wait_batch(self, batch_id: str, timeout: float = 300) -> openai.types.Batch:
        batch: openai.types.Batch = wait_for(
            lambda: (b := self.client.batches.retrieve(batch_id)).status in TERMINAL and b, timeout, 0.2
        )
        return batch

    def completed(self, batch_id: str) -> int:
        counts = self.client.batches.retrieve(batch_id).request_counts
        return counts.completed if counts else 0

    def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        return [json.loads(x) for x in self.client.files.content(file_id).text.splitlines()]


def chat_line(custom_id: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": f"Say {custom_id}."}], "max_tokens": 4},
    }


@pytest.fixture
def managed_gateway(
    settings: Settings, engine_install: EngineInstall, smollm2_gguf: Path, tmp_path: Path
) -> Iterator[Callable[..., Gateway]]:
    """Start gateways that own their llama-server (no engine_url); each is stopped, with its server, at the end."""
    assert engine_install.llama_server.is_file()  # built once; the gateway's own build() then reuses it
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"gateway-{len(running)}",
            "api_keys": f"{KEY}=watchdog",
            "model": MODEL,
            "model_path": smollm2_gguf,
            "parallel": 2,
            "ctx_size": 2048,
            "threads": 2,
            "watchdog_check_seconds": 0.2,
        }
        gateway = GatewaySettings(**(values | overrides))
        app = create_app(settings.model_copy(update={"gateway": gateway}))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        wait_for(lambda: server.started or not thread.is_alive(), timeout=120)
        assert thread.is_alive(), "the gateway did not start"
        return Gateway(app, f"http://127.0.0.1:{port}")

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=60)


def restarts_counted(reason: str) -> float:
    return REGISTRY.get_sample_value("kubeinfer_engine_restarts_total", {"reason": reason}) or 0.0


def test_killed_server_is_restarted_on_the_same_url_and_the_batch_completes(
    managed_gateway: Callable[..., Gateway],
) -> None:
    gw = managed_gateway(watchdog_hang_seconds=10)
    before = gw.watchdog.state()
    assert (before.state, before.restarts, before.url) == ("running", 0, gw.watchdog.url)
    assert before.pid is not None
    assert before.rss_bytes
    assert before.last_heartbeat
    counted = restarts_counted("exited")
    ids = [f"k{i}" for i in range(BATCH_REQUESTS)]
    batch_id = gw.submit([chat_line(i) for i in ids])
    wait_for(lambda: gw.completed(batch_id) >= ANSWERED_BEFORE_KILL, timeout=120, interval=0.05)

    os.kill(before.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert gw.client.batches.retrieve(batch_id).status == "in_progress"
    after = wait_for(lambda: (s := gw.watchdog.state()).state == "running" and s.restarts == 1 and s, timeout=60)
    print(f"SIGKILL to healthy again: {time.monotonic() - killed:.2f} s")
    assert after.pid != before.pid
    assert after.url == before.url
    assert after.last_exit == "killed by SIGKILL"
    assert restarts_counted("exited") == counted + 1
    assert "restart 1: killed by SIGKILL" in after.log_path.read_text()

    batch = gw.wait_batch(batch_id)
    assert batch.status == "completed", batch
    output = gw.lines(batch.output_file_id)
    assert sorted(o["custom_id"] for o in output) == sorted(ids)
    assert batch.error_file_id is None

    loop = gw.watchdog._task.get_loop() if gw.watchdog._task else None
    assert loop is not None
    asyncio.run_coroutine_threadsafe(gw.watchdog.restart("by the test"), loop).result(timeout=60)
    again = wait_for(lambda: (s := gw.watchdog.state()).state == "running" and s, timeout=60)
    assert (again.restarts, again.last_exit) == (2, "restart requested: by the test")
    assert again.pid not in (before.pid, after.pid)
    assert gw.watchdog.history[-1].delay_seconds == 0


@pytest.mark.slow
def test_stopped_server_is_marked_hung_killed_and_restarted(managed_gateway: Callable[..., Gateway]) -> None:
    hang_seconds = 3.0
    gw = managed_gateway(watchdog_hang_seconds=hang_seconds)
    before = gw.watchdog.state()
    assert before.pid is not None
    ids = [f"s{i}" for i in range(BATCH_REQUESTS)]
    batch_id = gw.submit([chat_line(i) for i in ids])
    wait_for(lambda: gw.completed(batch_id) >= ANSWERED_BEFORE_KILL, timeout=120, interval=0.05)

    counted = restarts_counted("hung")
    os.kill(before.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        after = wait_for(lambda: (s := gw.watchdog.state()).state == "running" and s.restarts == 1 and s, timeout=60)
    finally:
        if _alive(before.pid):
            os.kill(before.pid, signal.SIGKILL)
    recovered = time.monotonic() - stopped
    print(f"SIGSTOP to healthy again: {recovered:.2f} s (hang_seconds {hang_seconds})")
    assert recovered < hang_seconds + 30
    assert after.pid != before.pid
    assert after.last_exit is not None
    assert after.last_exit.startswith("hung: /health unanswered for")
    assert after.last_exit.endswith("killed with SIGKILL")
    assert restarts_counted("hung") == counted + 1
    assert not _alive(before.pid)

    batch = gw.wait_batch(batch_id)
    assert batch.status == "completed", batch
    assert sorted(o["custom_id"] for o in gw.lines(batch.output_file_id)) == sorted(ids)
    assert batch.error_file_id is None


@pytest.mark.slow
def test_requests_past_the_deadline_are_abandoned_retried_and_failed_with_the_reason(
    managed_gateway: Callable[..., Gateway],
) -> None:
    """The watchdog is told to tolerate the stop (hang_seconds 600), so only the request deadline acts.

    The deadline (3 s) is not shorter because the resumed server must answer within it on a busy machine,
    after the requests abandoned while it was stopped (1.5 s failed that beside the cluster tier).
    """
    gw = managed_gateway(watchdog_hang_seconds=600, request_deadline_seconds=3, batch_max_attempts=3)
    pid = gw.watchdog.state().pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        batch = gw.wait_batch(gw.submit([chat_line(f"d{i}") for i in range(2)]), timeout=120)
        print(f"3 attempts of 3 s each abandoned after {time.monotonic() - started:.1f} s")
        assert batch.status == "completed", batch
        assert batch.request_counts is not None
        assert (batch.request_counts.completed, batch.request_counts.failed) == (0, 2)
        errors = gw.lines(batch.error_file_id)
        assert sorted(e["custom_id"] for e in errors) == ["d0", "d1"]
        for error in errors:
            assert error["error"]["code"] == "engine_unavailable"
            assert error["error"]["message"] == "gave up after 3 attempts: no answer within 3 s (deadline)"
        assert gw.watchdog.state().restarts == 0

        retries = _retries()
        batch_id = gw.submit([chat_line(f"r{i}") for i in range(3)])
        wait_for(lambda: _retries() > retries, timeout=60)  # a first attempt ran into the deadline
    finally:
        os.kill(pid, signal.SIGCONT)
    batch = gw.wait_batch(batch_id)
    assert batch.status == "completed", batch
    assert sorted(o["custom_id"] for o in gw.lines(batch.output_file_id)) == ["r0", "r1", "r2"]
    assert batch.error_file_id is None
    assert gw.watchdog.state().pid == pid


def test_server_that_cannot_start_is_retried_with_growing_delays_while_the_gateway_answers_503(
    managed_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))
    gw = managed_gateway(model_path=corrupt, watchdog_backoff_seconds=0.2, watchdog_backoff_max_seconds=0.8)
    wait_for(lambda: len(gw.watchdog.history) >= 5, timeout=60)
    events = list(gw.watchdog.history)[:5]
    assert [e.delay_seconds for e in events] == [0.2, 0.4, 0.8, 0.8, 0.8]
    gaps = [b.at - a.at for a, b in zip(events, events[1:], strict=False)]
    assert all(gap >= delay for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 0.8], strict=True)), gaps
    assert all("while loading" in e.reason for e in events)
    state = wait_for(lambda: (s := gw.watchdog.state()).state == "backoff" and s, timeout=30, interval=0.02)
    assert state.restarts >= 4
    assert state.last_exit is not None
    assert state.last_exit.startswith("exited with code")

    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{gw.url}/health").status_code == 200
    assert httpx.get(f"{gw.url}/v1/models", headers=headers).status_code == 200
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 503
    error = response.json()["error"]
    print(f"503: {error['message']}")
    assert error["code"] == "engine_unavailable"
    assert "the model server" in error["message"]
    assert "last exit: exited with code" in error["message"]
    assert "while loading" in error["message"]
    assert httpx.post(f"{gw.url}/v1/chat/completions", json=body).status_code == 401


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _retries() -> float:
    return REGISTRY.get_sample_value("kubeinfer_batch_request_retries_total") or 0.0
