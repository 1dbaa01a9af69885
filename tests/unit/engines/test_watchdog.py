"""Watchdog back-off schedule, settings checks, the request deadline and the cluster's probes and deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from kubeinfer.batch.engine import EngineClient, TransientEngineError
from kubeinfer.cli import app
from kubeinfer.engines.watchdog import Backoff, ServerState, WatchdogConfig
from kubeinfer.gateway.engine_state import unavailable_message
from kubeinfer.operator.builders.batch_job import build_worker_job
from kubeinfer.operator.builders.model_install import build_server_deployment
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.settings import GatewaySettings, OperatorSettings


def test_backoff_doubles_to_the_maximum_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, stable_seconds=60.0)
    assert [backoff.next_delay(healthy_seconds=5.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.next_delay(healthy_seconds=60.0) == 1.0
    assert backoff.next_delay(healthy_seconds=0.0) == 2.0


def test_backoff_stays_at_the_maximum_after_very_many_failures() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, stable_seconds=60.0)
    for _ in range(2000):
        delay = backoff.next_delay(healthy_seconds=0.0)
    assert delay == 30.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"check_seconds": 0}, "check_seconds must be greater than 0, got 0"),
        ({"hang_seconds": -1}, "hang_seconds must be greater than 0, got -1"),
        ({"backoff_seconds": 5, "backoff_max_seconds": 2}, r"backoff_max_seconds \(2\) must be at least"),
        ({"check_seconds": 10, "hang_seconds": 5}, r"hang_seconds \(5\) must be at least check_seconds \(10\)"),
    ],
)
def test_watchdog_config_rejects_impossible_values(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WatchdogConfig(**values)


def test_gateway_refuses_watchdog_settings_that_cannot_work(tmp_path: Path) -> None:
    from kubeinfer.gateway.app import create_app
    from kubeinfer.settings import Settings

    gateway = GatewaySettings(data_dir=tmp_path, watchdog_hang_seconds=0.5, watchdog_check_seconds=2)
    with pytest.raises(ValueError, match="hang_seconds"):
        create_app(Settings(gateway=gateway), insecure_no_auth=True)


@pytest.mark.parametrize(
    "field", ["request_deadline_seconds", "watchdog_check_seconds", "watchdog_hang_seconds", "watchdog_backoff_seconds"]
)
def test_gateway_settings_reject_non_positive_seconds(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        GatewaySettings(**{field: 0})


def test_operator_settings_reject_a_bad_deadline_or_hang_time() -> None:
    with pytest.raises(ValidationError, match="batch_request_deadline_seconds"):
        OperatorSettings(batch_request_deadline_seconds=-1)
    with pytest.raises(ValidationError, match="server_hang_seconds"):
        OperatorSettings(server_hang_seconds=1)


def test_engine_client_refuses_a_non_positive_deadline() -> None:
    with pytest.raises(ValueError, match="deadline must be greater than 0 seconds, got 0"):
        EngineClient("http://127.0.0.1:1", timeout=0)


async def _silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts and reads but never answers, like a stopped engine's listening socket."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def test_a_request_with_no_answer_is_abandoned_at_the_deadline() -> None:
    async def main() -> None:
        async for url in _silent_server():
            client = EngineClient(url, timeout=0.3)
            try:
                started = asyncio.get_running_loop().time()
                with pytest.raises(TransientEngineError, match=r"^no answer within 0.3 s \(deadline\)$"):
                    await client.post("/v1/completions", {"prompt": "x"})
                assert asyncio.get_running_loop().time() - started < 2
            finally:
                await client.aclose()

    asyncio.run(main())


def test_waiting_for_a_restarting_server_counts_against_the_deadline() -> None:
    async def never_ready() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        client = EngineClient("http://127.0.0.1:1", timeout=0.2, ready=never_ready)
        try:
            with pytest.raises(TransientEngineError, match=r"no answer within 0.2 s \(deadline\)"):
                await client.post("/v1/completions", {"prompt": "x"})
        finally:
            await client.aclose()

    asyncio.run(main())


def _state(**changes: Any) -> ServerState:
    values: dict[str, Any] = {
        "name": "llama-server",
        "model": "m",
        "state": "backoff",
        "pid": None,
        "url": "http://127.0.0.1:1",
        "restarts": 3,
        "last_heartbeat": None,
        "rss_bytes": None,
        "last_exit": "exited with code 1 while loading: bad magic",
        "log_path": Path("/tmp/x.log"),
    }
    return ServerState(**(values | changes))


def test_the_503_message_names_the_state_the_restarts_and_the_last_exit() -> None:
    assert unavailable_message(_state()) == (
        "the model server is down and waits to be restarted (back-off), 3 restarts so far; "
        "last exit: exited with code 1 while loading: bad magic. Retry later."
    )
    assert "is starting (loading the model), 1 restart so far." in unavailable_message(
        _state(state="starting", restarts=1, last_exit=None)
    )


def test_worker_job_passes_the_request_deadline_and_fails_fast_only_on_usage_errors() -> None:
    settings = OperatorSettings(batch_request_deadline_seconds=45)
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "batch-abc", "namespace": "ns", "uid": "u-1"},
        "spec": {"inputFileId": "file-in", "endpoint": "/v1/completions", "workers": 2, "project": "p"},
    }
    job = build_worker_job(body, "smollm2", settings)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--request-deadline") + 1] == "45"
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"] == {"containerName": "worker", "operator": "In", "values": [2]}
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_worker_refuses_a_zero_request_deadline() -> None:
    result = CliRunner().invoke(
        app,
        [
            "step",
            "shard",
            "--batch-id=b",
            "--input-file-id=f",
            "--endpoint=/v1/completions",
            "--data-dir=/nonexistent",
            "--model-install=m",
            "--shards=1",
            "--index=0",
            "--progress=p",
            "--request-deadline=0",
        ],
    )
    output = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2
    assert "Invalid value for '--request-deadline': Input should be greater than or equal to 0.001" in output


def test_server_pod_is_restarted_by_the_kubelet_when_health_goes_unanswered() -> None:
    spec = {"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1", "serving": {}}
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "ModelInstall",
        "metadata": {"name": "smol", "namespace": "ns", "uid": "u-1"},
        "spec": spec,
    }
    parsed = ModelInstall.model_validate({**body, "metadata": {"name": "smol", "namespace": "ns"}})
    settings = OperatorSettings(server_startup_seconds=600, server_hang_seconds=30)
    deployment = build_server_deployment(body, parsed, "smol/x.gguf", "Q4_1", 10**9, settings)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    health = {"path": "/health", "port": 8080}
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert startup["httpGet"] == liveness["httpGet"] == container["readinessProbe"]["httpGet"] == health
    assert startup["periodSeconds"] * startup["failureThreshold"] == 600
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 30
    assert liveness["timeoutSeconds"] <= liveness["periodSeconds"]
