"""A gateway SIGKILLed mid-batch resumes after restart: every request answered exactly once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from kubeinfer.engines.llamacpp_server import LlamaServer, free_port

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m"
KEY = "sk-recovery"


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class GatewayProcess:
    """`python -m kubeinfer.gateway` in its own process, so the test can SIGKILL it."""

    def __init__(self, data_dir: Path, engine_url: str, log: Path) -> None:
        self.data_dir, self.engine_url, self.log = data_dir, engine_url, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        env = {**os.environ, "KUBEINFER_GATEWAY__API_KEYS": f"{KEY}=recovery"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kubeinfer.gateway",
                    "--port",
                    str(self.port),
                    "--model",
                    MODEL,
                    "--engine-url",
                    self.engine_url,
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

        def up() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=60)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def gateway(llama_server: LlamaServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "data", llama_server.base_url, tmp_path / "gateway.log")
    yield process
    process.stop()


def test_sigkill_mid_batch_then_restart_answers_each_request_once(gateway: GatewayProcess) -> None:
    gateway.start()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    lines = [
        {
            "custom_id": f"k{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "max_tokens": 8,
                "temperature": 0,
                "messages": [{"role": "user", "content": f"What is {i} plus one?"}],
            },
        }
        for i in range(1000)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")

    def completed() -> int:
        counts = client.batches.retrieve(batch.id).request_counts
        return counts.completed if counts else 0

    wait_for(lambda: completed() >= 150, timeout=300, interval=0.2)
    gateway.kill()
    work_log = gateway.data_dir / "work" / batch.id / "output.jsonl"
    lines_at_kill = work_log.read_bytes().count(b"\n")
    assert 150 <= lines_at_kill < 1000, "the kill must land mid-batch"

    gateway.start()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    done = wait_for(
        lambda: (b := client.batches.retrieve(batch.id)).status in ("completed", "failed") and b,
        timeout=900,
        interval=0.5,
    )
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1000, 0)
    assert done.output_file_id is not None
    output = client.files.content(done.output_file_id).text.splitlines()
    ids = [json.loads(line)["custom_id"] for line in output]
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert set(ids) == {f"k{i}" for i in range(1000)}
