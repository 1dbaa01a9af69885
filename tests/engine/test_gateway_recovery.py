"""A gateway SIGKILLed mid-batch resumes after restart: every request answered exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from kubeinfer.engines.llamacpp_server import LlamaServer
from testbed.gateway_process import KEY, MODEL, GatewayProcess
from testbed.wait import wait_for


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
    work_log = gateway.data_dir / "work" / batch.id / "shard-0.output.jsonl"
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


def test_input_of_a_running_batch_cannot_be_deleted_so_a_restart_loses_no_finished_work(
    gateway: GatewayProcess,
) -> None:
    """The input file of an unfinished batch is refused deletion (409), so a gateway killed mid-batch resumes
    it from that file and publishes every line, the ones finished before the kill included."""
    gateway.start()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    count = 200
    lines = [
        {
            "custom_id": f"d{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "max_tokens": 8,
                "temperature": 0,
                "messages": [{"role": "user", "content": f"Name the number {i}."}],
            },
        }
        for i in range(count)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")

    def completed() -> int:
        counts = client.batches.retrieve(batch.id).request_counts
        return counts.completed if counts else 0

    wait_for(lambda: completed() >= 20, timeout=300, interval=0.2)
    with pytest.raises(openai.ConflictError, match=f"input of unfinished batch {batch.id}"):
        client.files.delete(file.id)
    gateway.kill()
    finished_at_kill = (gateway.data_dir / "work" / batch.id / "shard-0.output.jsonl").read_bytes().count(b"\n")
    assert 20 <= finished_at_kill < count, "the kill must land mid-batch"

    gateway.start()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.ConflictError):
        client.files.delete(file.id)
    done = wait_for(
        lambda: (b := client.batches.retrieve(batch.id)).status in ("completed", "failed") and b,
        timeout=900,
        interval=0.5,
    )
    assert done.status == "completed", done
    assert done.output_file_id is not None
    ids = [json.loads(line)["custom_id"] for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(ids) == sorted(f"d{i}" for i in range(count))
    assert client.files.delete(file.id).deleted  # finished: the input may go now
