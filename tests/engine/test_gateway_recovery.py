"""A gateway SIGKILLed mid-batch resumes after restart: every request answered exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types import Batch, FileObject

from kubeinfer.engines.llamacpp_server import LlamaServer
from testbed.gateway_process import KEY, MODEL, GatewayProcess
from testbed.wait import wait_for

#: Requests of the batches the gateway is killed under: the kill waits for a quarter of them answered, so it lands
#: with up to 60 still to answer (8 of them in flight), which the restarted gateway must answer once each. It had
#: 1,000, then 200: the kill only has to land mid-batch, so the count is not the point.
BATCH_REQUESTS = 80
ANSWERED_BEFORE_KILL = BATCH_REQUESTS // 4


@pytest.fixture
def gateway(llama_server: LlamaServer, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "data", llama_server.base_url, tmp_path / "gateway.log")
    yield process
    process.stop()


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)


def _submit(client: openai.OpenAI, count: int, prefix: str, prompt: str) -> tuple[FileObject, Batch]:
    """A batch of `count` chat requests, custom ids `{prefix}{i}`, prompts `prompt` with `{i}` filled in."""
    lines = [
        {
            "custom_id": f"{prefix}{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "max_tokens": 4,
                "temperature": 0,
                "messages": [{"role": "user", "content": prompt.format(i=i)}],
            },
        }
        for i in range(count)
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    file = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    return file, batch


def _wait_completed(client: openai.OpenAI, batch_id: str, at_least: int) -> None:
    def completed() -> int:
        counts = client.batches.retrieve(batch_id).request_counts
        return counts.completed if counts else 0

    wait_for(lambda: completed() >= at_least, timeout=300, interval=0.2)


def _kill(gateway: GatewayProcess, batch_id: str) -> int:
    """SIGKILL the gateway; returns how many of the batch's lines it had finished by then."""
    gateway.kill()
    return (gateway.data_dir / "work" / batch_id / "shard-0.output.jsonl").read_bytes().count(b"\n")


def _ended(client: openai.OpenAI, batch_id: str) -> Batch:
    def ended() -> Batch | None:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed") else None

    return wait_for(ended, timeout=900, interval=0.5)


def test_sigkill_mid_batch_then_restart_answers_each_request_once(gateway: GatewayProcess) -> None:
    gateway.start()
    client = _client(gateway)
    _file, batch = _submit(client, BATCH_REQUESTS, "k", "What is {i} plus one?")
    _wait_completed(client, batch.id, ANSWERED_BEFORE_KILL)
    lines_at_kill = _kill(gateway, batch.id)
    assert ANSWERED_BEFORE_KILL <= lines_at_kill < BATCH_REQUESTS, "the kill must land mid-batch"

    gateway.start()
    client = _client(gateway)
    done = _ended(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (BATCH_REQUESTS, 0)
    assert done.output_file_id is not None
    output = client.files.content(done.output_file_id).text.splitlines()
    ids = [json.loads(line)["custom_id"] for line in output]
    assert len(ids) == BATCH_REQUESTS
    assert len(set(ids)) == BATCH_REQUESTS
    assert set(ids) == {f"k{i}" for i in range(BATCH_REQUESTS)}


@pytest.mark.slow
def test_input_of_a_running_batch_cannot_be_deleted_so_a_restart_loses_no_finished_work(
    gateway: GatewayProcess,
) -> None:
    """The input file of an unfinished batch is refused deletion (409), so a gateway killed mid-batch resumes
    it from that file and publishes every line, the ones finished before the kill included."""
    gateway.start()
    client = _client(gateway)
    count = BATCH_REQUESTS
    file, batch = _submit(client, count, "d", "Name the number {i}.")
    _wait_completed(client, batch.id, ANSWERED_BEFORE_KILL)
    with pytest.raises(openai.ConflictError, match=f"input of unfinished batch {batch.id}"):
        client.files.delete(file.id)
    finished_at_kill = _kill(gateway, batch.id)
    assert ANSWERED_BEFORE_KILL <= finished_at_kill < count, "the kill must land mid-batch"

    gateway.start()
    client = _client(gateway)
    with pytest.raises(openai.ConflictError):
        client.files.delete(file.id)
    done = _ended(client, batch.id)
    assert done.status == "completed", done
    assert done.output_file_id is not None
    ids = [json.loads(line)["custom_id"] for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(ids) == sorted(f"d{i}" for i in range(count))
    assert client.files.delete(file.id).deleted  # finished: the input may go now
