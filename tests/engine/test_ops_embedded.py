"""`kubeinfer workers` and `kubeinfer batch` against the embedded gateway owning a real llama-server.

The gateway starts its own llama-server (SmolLM2 from the model cache) under its watchdog, so status,
memory, the server's log and a restart are all real; the CLI runs in-process through typer's runner.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from typer.testing import CliRunner

from kubeinfer.cli.app import app as cli
from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.gateway.app import create_app
from kubeinfer.metrics import gateway as gateway_metrics
from kubeinfer.settings import GatewaySettings, Settings
from testbed.wait import wait_for

MODEL = "smollm2-135m"
ADMIN, USER = "sk-ops-admin", "sk-ops-user"
runner = CliRunner()


@pytest.fixture(scope="module")
def gateway(settings: Settings, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway in this process, owning llama-server; project `ops` is an admin, `team` is not."""
    gw = GatewaySettings(
        data_dir=tmp_path_factory.mktemp("ops-gateway"),
        api_keys=f"{ADMIN}=ops,{USER}=team",
        admin_projects="ops",
        model=MODEL,
        model_path=smollm2_gguf,
        parallel=2,
        ctx_size=2048,
        threads=1,
    )
    app = create_app(settings.model_copy(update={"gateway": gw}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=300)
    yield f"http://127.0.0.1:{server.config.port}/v1"
    server.should_exit = True
    thread.join(timeout=60)


def run(base_url: str, key: str, *args: str) -> Any:
    result = runner.invoke(cli, [*args, "--base-url", base_url, "--api-key", key], env={"COLUMNS": "250"})
    return result


def ok_json(base_url: str, key: str, *args: str) -> Any:
    result = run(base_url, key, *args, "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def submit(base_url: str, key: str, count: int, max_tokens: int) -> str:
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Count from {i} upwards, one number per line."}],
                "max_tokens": max_tokens,
                "temperature": 0,
            },
        }
        for i in range(count)
    ]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    return client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id


def server_of(workers: list[dict[str, Any]]) -> dict[str, Any]:
    return next(w for w in workers if w["kind"] == "server")


def test_status_shows_the_running_server_with_memory_and_the_batch_progress(gateway: str) -> None:
    batch_id = submit(gateway, USER, 40, 48)

    def progressing() -> list[dict[str, Any]] | None:
        workers = ok_json(gateway, USER, "workers", "list")
        batch = [w for w in workers if w["kind"] == "batch"]
        return workers if batch and batch[0]["done"] and batch[0]["done"] >= 1 else None

    workers = wait_for(progressing, timeout=120, interval=0.5)
    server = server_of(workers)
    assert server["state"] == "running"
    assert server["ready"]
    assert server["model"] == MODEL
    assert server["memory_bytes"] > 10 * 1024 * 1024
    assert time.time() - server["last_heartbeat"] < 30
    batch = next(w for w in workers if w["kind"] == "batch")
    assert batch["batch_id"] == batch_id
    assert batch["state"] == "in_progress"
    assert batch["total"] == 40
    assert time.time() - batch["last_heartbeat"] < 30
    # another project sees the server, never this batch
    assert [w["kind"] for w in ok_json(gateway, ADMIN, "workers", "list")] == ["server"]
    table = run(gateway, USER, "workers", "list")
    assert table.exit_code == 0
    assert server["name"] in table.stdout
    assert batch_id in table.stdout

    listed = ok_json(gateway, USER, "batch", "list")
    assert batch_id in [b["id"] for b in listed]
    assert batch_id not in [b["id"] for b in ok_json(gateway, ADMIN, "batch", "list")]
    shown = ok_json(gateway, USER, "batch", "get", batch_id)
    assert shown["id"] == batch_id
    assert shown["request_counts"]["total"] == 40
    cancelled = ok_json(gateway, USER, "batch", "cancel", batch_id)
    assert cancelled["status"] in ("cancelling", "cancelled")
    wait_for(lambda: ok_json(gateway, USER, "batch", "get", batch_id)["status"] == "cancelled", timeout=120)
    again = run(gateway, USER, "batch", "cancel", batch_id)
    assert again.exit_code == 0, again.output  # cancelling a cancelled batch is a no-op, as OpenAI answers


def test_logs_print_the_server_log_and_follow_streams_new_lines(gateway: str) -> None:
    name = server_of(ok_json(gateway, USER, "workers", "list"))["name"]
    result = run(gateway, USER, "workers", "logs", name, "--tail", "20")
    assert result.exit_code == 0, result.output
    assert 0 < len(result.stdout.splitlines()) <= 20
    headers = {"Authorization": f"Bearer {USER}"}
    received = b""
    url = f"{gateway}/ops/workers/{name}/logs"
    with httpx.stream("GET", url, params={"tail": 0, "follow": "true"}, headers=headers, timeout=60) as stream:
        client = openai.OpenAI(base_url=gateway, api_key=USER, max_retries=2)
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        for chunk in stream.iter_bytes():
            received += chunk
            if b"print_timing" in received or b"release" in received:
                break
    assert b"slot" in received


def in_flight() -> float:
    """The gauge the gateway's middleware moves, read from the object itself: in a whole session another test may
    have left a different registry in place of the default one."""
    (family,) = gateway_metrics.REQUESTS_IN_FLIGHT.collect()
    return float(family.samples[0].value)


def test_a_followed_log_ends_when_the_client_goes_and_when_the_server_process_ends(gateway: str) -> None:
    """Issue 17: `follow=true` never ended. Now the gateway stops streaming once the client disconnects, and
    ends the stream (after the last bytes the process wrote) once the process it follows is replaced."""
    name = server_of(ok_json(gateway, USER, "workers", "list"))["name"]
    headers = {"Authorization": f"Bearer {USER}"}
    url = f"{gateway}/ops/workers/{name}/logs"
    params: dict[str, str | int] = {"tail": 5, "follow": "true"}
    # The previous test's follow stream ends on the gateway's side once it notices that client went: wait for it,
    # or its late decrement would be counted against this stream.
    wait_for(lambda: in_flight() == 0, timeout=30)
    idle = in_flight()
    with httpx.stream("GET", url, params=params, headers=headers, timeout=60) as stream:
        assert stream.status_code == 200
        # Keep the iterator: a temporary one (`next(stream.iter_bytes())`) is collected at once, and closing it
        # closes the connection, so the gateway ended the stream before the gauge was read (CI saw 0 once).
        chunks = stream.iter_bytes()
        next(chunks)
        assert in_flight() == idle + 1
    wait_for(lambda: in_flight() == idle, timeout=30)

    before = server_of(ok_json(gateway, USER, "workers", "list"))
    restart = threading.Thread(target=run, args=(gateway, ADMIN, "workers", "restart", name))
    with httpx.stream("GET", url, params=params, headers=headers, timeout=60) as stream:
        assert stream.status_code == 200
        restart.start()
        received = b"".join(stream.iter_bytes())  # returns only when the gateway ends the stream
    restart.join(timeout=300)
    assert received
    after = server_of(ok_json(gateway, USER, "workers", "list"))
    assert after["restarts"] == before["restarts"] + 1
    assert after["pid"] != before["pid"]


def test_only_an_admin_project_restarts_the_server_and_it_comes_back(gateway: str) -> None:
    before = server_of(ok_json(gateway, USER, "workers", "list"))
    denied = run(gateway, USER, "workers", "restart", before["name"])
    assert denied.exit_code == 1
    assert "HTTP 403" in denied.output
    assert "ADMIN_PROJECTS" in denied.output

    restarted = run(gateway, ADMIN, "workers", "restart", before["name"])
    assert restarted.exit_code == 0, restarted.output

    def back() -> dict[str, Any] | None:
        server = server_of(ok_json(gateway, USER, "workers", "list"))
        return server if server["state"] == "running" and server["pid"] != before["pid"] else None

    after = wait_for(back, timeout=180, interval=0.5)
    assert after["restarts"] == before["restarts"] + 1
    client = openai.OpenAI(base_url=gateway, api_key=USER, max_retries=2)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.choices[0].message.content is not None


def test_unknown_worker_and_batch_are_clear_errors(gateway: str) -> None:
    for args in (["workers", "logs", "no-such-server"], ["workers", "restart", "no-such-server"]):
        result = run(gateway, ADMIN, *args)
        assert result.exit_code == 1
        assert "HTTP 404" in result.output
        assert "No such worker: no-such-server" in result.output
    for args in (["batch", "get", "batch-nope"], ["batch", "cancel", "batch-nope"], ["batches", "show", "batch-nope"]):
        result = run(gateway, USER, *args)
        assert result.exit_code == 1
        assert "HTTP 404" in result.output
        assert "batch-nope" in result.output
    bad_key = run(gateway, "sk-wrong", "workers", "list")
    assert bad_key.exit_code == 1
    assert "HTTP 401" in bad_key.output
