"""The gateway driven by the official `openai` client against the session's real llama-server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.auth import NoApiKeysError
from kubeinfer.settings import GatewaySettings, Settings
from testbed.served import serving_in_thread
from testbed.wait import wait_for

MODEL = "smollm2-135m"
KEY_A, KEY_B = "sk-test-a", "sk-test-b"
MAX_UPLOAD = 2 * 1024 * 1024
#: Requests of the exactly-once batch: 20 behind each of its three system prompts, 7.5 times the 8 the embedded
#: runner keeps in flight (2 x the engine's 4 slots), so the output is written across several progress saves.
#: It had 1,000, then 300: a load figure, not a behaviour (`make bench`: perf/gateway_throughput.py).
BATCH_REQUESTS = 60


def chat_line(custom_id: str, content: str, model: str = MODEL, system: str = "Answer briefly.") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}],
            "max_tokens": 8,
            "temperature": 0,
        },
    }


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((json.dumps(x) if not isinstance(x, str) else x).encode() + b"\n" for x in lines)


@pytest.fixture(scope="module")
def gateway_url(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway in this process on a free port, using the session's llama-server as its engine."""
    gateway = GatewaySettings(
        data_dir=tmp_path_factory.mktemp("gateway"),
        api_keys=f"{KEY_A}=projectA,{KEY_B}=projectB",
        max_upload_bytes=MAX_UPLOAD,
        model=MODEL,
    )
    app = create_app(Settings(gateway=gateway), engine_url=llama_server.base_url)
    with serving_in_thread(app) as url:
        yield url


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=KEY_A, max_retries=0)


@pytest.fixture
def client_b(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=KEY_B, max_retries=0)


def submit(client: openai.OpenAI, lines: list[Any]) -> str:
    file = client.files.create(file=("input.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    return client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h").id


def wait_batch(client: openai.OpenAI, batch_id: str, timeout: float = 600.0) -> openai.types.Batch:
    terminal = {"completed", "failed", "expired", "cancelled"}
    return wait_for(lambda: (b := client.batches.retrieve(batch_id)).status in terminal and b, timeout, 0.2)


def test_gateway_refuses_to_start_without_keys(tmp_path: Path) -> None:
    settings = Settings(gateway=GatewaySettings(data_dir=tmp_path))
    with pytest.raises(NoApiKeysError, match="--insecure-no-auth"):
        create_app(settings, engine_url="http://127.0.0.1:1")
    create_app(settings, insecure_no_auth=True, engine_url="http://127.0.0.1:1")


def test_chat_completion_non_streaming_and_streaming(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Say hello."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0

    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) > 1
    assert "".join(pieces)


def test_completions_and_models(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4)
    assert reply.choices[0].text


def test_unknown_model_is_404_with_clear_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="model 'gpt-9' does not exist"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


def test_wrong_or_missing_api_key_is_401(gateway_url: str) -> None:
    bad = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        bad.files.list()
    assert httpx.get(f"{gateway_url}/v1/batches").status_code == 401


def test_stream_disconnect_stops_generation(client: openai.OpenAI, gateway_url: str, llama_server: LlamaServer) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "max_tokens": 900,
        "temperature": 1.0,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
    }
    headers = {"Authorization": f"Bearer {KEY_A}"}

    def busy() -> bool:
        slots = httpx.get(f"{llama_server.base_url}/slots").json()
        return any(s.get("is_processing") for s in slots)

    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)
        next(chunks)
        assert busy()
    # 900 tokens take several seconds to generate; the slot must be freed well before that
    wait_for(lambda: not busy(), timeout=3.0)


def test_oversized_upload_is_413_and_stores_nothing(client: openai.OpenAI) -> None:
    kept = client.files.create(file=("small.jsonl", io.BytesIO(jsonl([chat_line("a", "hi")]))), purpose="batch")
    before = {f.id for f in client.files.list()}
    big = io.BytesIO(b"x" * (MAX_UPLOAD + 1))
    with pytest.raises(openai.APIStatusError, match="maximum size") as info:
        client.files.create(file=("big.jsonl", big), purpose="batch")
    assert info.value.status_code == 413
    assert {f.id for f in client.files.list()} == before
    assert client.files.content(kept.id).content == jsonl([chat_line("a", "hi")])


def test_upload_records_sha256_and_round_trips(client: openai.OpenAI, gateway_url: str) -> None:
    import hashlib

    data = jsonl([chat_line(str(i), f"n{i}") for i in range(50)])
    file = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    assert (file.bytes, file.filename, file.purpose) == (len(data), "in.jsonl", "batch")
    meta = httpx.get(f"{gateway_url}/v1/files/{file.id}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert client.files.content(file.id).content == data
    assert client.files.delete(file.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)


def test_other_projects_files_and_batches_are_404(client: openai.OpenAI, client_b: openai.OpenAI) -> None:
    batch_id = submit(client, [chat_line("1", "hi")])
    batch = wait_batch(client, batch_id)
    for call in (
        lambda: client_b.files.retrieve(batch.input_file_id),
        lambda: client_b.files.content(batch.input_file_id),
        lambda: client_b.files.delete(batch.input_file_id),
        lambda: client_b.batches.retrieve(batch_id),
        lambda: client_b.batches.cancel(batch_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert batch_id not in {b.id for b in client_b.batches.list()}
    assert batch.input_file_id not in {f.id for f in client_b.files.list()}
    with pytest.raises(openai.NotFoundError):
        client_b.batches.create(
            input_file_id=batch.input_file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_malformed_jsonl_fails_with_line_numbers(client: openai.OpenAI) -> None:
    lines: list[Any] = [chat_line("1", "ok"), "{not json", chat_line("3", "ok"), "[1, 2]"]
    batch = wait_batch(client, submit(client, lines))
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data
    assert [(e.code, e.line) for e in batch.errors.data] == [("invalid_json_line", 2), ("invalid_json_line", 4)]
    assert batch.output_file_id is None


def test_duplicate_custom_ids_fail_validation(client: openai.OpenAI) -> None:
    batch = wait_batch(client, submit(client, [chat_line("a", "1"), chat_line("b", "2"), chat_line("a", "3")]))
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data
    [error] = batch.errors.data
    assert (error.code, error.line) == ("duplicate_custom_id", 3)
    assert "'a'" in (error.message or "")


def test_wrong_method_url_mixed_and_unknown_models(client: openai.OpenAI) -> None:
    wrong_method = {**chat_line("2", "x"), "method": "GET"}
    wrong_url = {**chat_line("3", "x"), "url": "/v1/completions"}
    no_id = {k: v for k, v in chat_line("4", "x").items() if k != "custom_id"}
    lines = [chat_line("1", "x"), wrong_method, wrong_url, no_id, chat_line("5", "x", model="other")]
    batch = wait_batch(client, submit(client, lines))
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_method", 2),
        ("invalid_url", 3),
        ("missing_custom_id", 4),
        ("mismatched_model", 5),
    ]

    unknown = wait_batch(client, submit(client, [chat_line("1", "x", model="gpt-9")]))
    assert unknown.status == "failed"
    assert unknown.errors is not None
    assert unknown.errors.data
    assert unknown.errors.data[0].code == "model_not_found"
    assert "gpt-9" in (unknown.errors.data[0].message or "")


def test_batch_over_shared_system_prompts_has_one_output_line_per_custom_id(
    client: openai.OpenAI, gateway_url: str
) -> None:
    """Exactly once over three shared system prompts; load figures are `make bench`'s (perf/gateway_throughput.py)."""
    systems = ["Answer briefly.", "You are a poet.", "Reply in French."]
    lines = [chat_line(f"req-{i}", f"Number {i}?", system=systems[i % 3]) for i in range(BATCH_REQUESTS)]
    batch = wait_batch(client, submit(client, lines), timeout=900)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        BATCH_REQUESTS,
        BATCH_REQUESTS,
        0,
    )
    assert batch.output_file_id
    assert batch.error_file_id is None
    output = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert len(output) == BATCH_REQUESTS
    assert sorted(o["custom_id"] for o in output) == sorted(f"req-{i}" for i in range(BATCH_REQUESTS))
    first = output[0]
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["content"] is not None
    usage = batch.usage
    assert usage is not None
    assert usage.output_tokens == sum(o["response"]["body"]["usage"]["completion_tokens"] for o in output)

    auth = {"Authorization": f"Bearer {KEY_A}"}
    history = httpx.get(f"{gateway_url}/v1/jobs/history", params={"limit": 1000000}, headers=auth).json()["jobs"]
    entry = next(j for j in history if j["batch_id"] == batch.id)
    assert entry["total_tokens"] == usage.total_tokens
    assert entry["token_throughput"] > 0
    assert entry["request_throughput"] > 0
    assert entry["request_throughput"] == pytest.approx(BATCH_REQUESTS / entry["inference_seconds"], rel=0.01)


def test_jobs_stats_and_history_edge_cases(client: openai.OpenAI, gateway_url: str) -> None:
    ok = wait_batch(client, submit(client, [chat_line("1", "hi"), chat_line("2", "yo")]))
    bad = wait_batch(client, submit(client, ["{broken"]))
    auth = {"Authorization": f"Bearer {KEY_A}"}
    stats = httpx.get(f"{gateway_url}/v1/jobs/stats", headers=auth).json()
    assert set(stats) == {
        "total_jobs",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "avg_token_throughput",
        "success_rate",
    }
    assert stats["total_jobs"] >= 2
    assert stats["total_tokens"] == stats["prompt_tokens"] + stats["completion_tokens"]
    assert 0 < stats["success_rate"] < 1
    assert stats["avg_token_throughput"] > 0

    def history(**params: Any) -> list[dict[str, Any]]:
        response = httpx.get(f"{gateway_url}/v1/jobs/history", params=params, headers=auth)
        assert response.status_code == 200, response.text
        jobs: list[dict[str, Any]] = response.json()["jobs"]
        return jobs

    assert history(limit=0) == []
    assert history(limit=1)[0]["batch_id"] == bad.id
    failed = history(status="failed", limit=1000000)
    assert bad.id in {j["batch_id"] for j in failed}
    assert all(j["total_tokens"] is None and j["token_throughput"] is None for j in failed)
    done = next(j for j in history(status="completed") if j["batch_id"] == ok.id)
    assert done["total_tokens"] > 0
    assert done["completed_requests"] == 2
    assert httpx.get(f"{gateway_url}/v1/jobs/history", params={"limit": -1}, headers=auth).status_code == 400
    other = httpx.get(f"{gateway_url}/v1/jobs/history", headers={"Authorization": f"Bearer {KEY_B}"}).json()
    assert ok.id not in {j["batch_id"] for j in other["jobs"]}


def test_cancel_keeps_partial_output(client: openai.OpenAI) -> None:
    lines = [chat_line(f"c{i}", f"Count to {i}.") for i in range(300)]
    batch_id = submit(client, lines)
    wait_for(lambda: (b := client.batches.retrieve(batch_id)).request_counts and b.request_counts.completed >= 5)
    assert client.batches.cancel(batch_id).status in ("cancelling", "cancelled")
    batch = wait_batch(client, batch_id)
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None
    assert batch.request_counts is not None
    assert 5 <= batch.request_counts.completed < 300
    assert batch.output_file_id
    ids = [json.loads(x)["custom_id"] for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert len(ids) == len(set(ids)) == batch.request_counts.completed


def test_batch_list_paginates(client: openai.OpenAI) -> None:
    created = [submit(client, [chat_line("1", "x", model="nope")]) for _ in range(3)]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == created[::-1][:2]
    assert page.has_more
    rest = client.batches.list(limit=2, after=page.data[-1].id)
    assert rest.data[0].id == created[0]


def test_analyze_model_reports_fit_and_errors(gateway_url: str, smollm2_gguf: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY_A}"}
    reply = httpx.post(f"{gateway_url}/api/models/analyze", json={"content": str(smollm2_gguf)}, headers=auth)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["success"]
    assert body["will_fit"]
    assert body["fits_without_offload"]
    assert body["model_id"] == smollm2_gguf.stem
    assert {"total_gb", "model_gb", "kv_cache_gb", "overhead_gb", "cpu_offload_gb"} <= set(body["memory"])
    assert body["memory"]["cpu_offload_gb"] == 0.0
    assert body["performance"]["estimated_throughput"] > 0
    for bad in ("", "not a valid url", "https://github.com/ggml-org/llama.cpp"):
        reply = httpx.post(f"{gateway_url}/api/models/analyze", json={"content": bad}, headers=auth)
        assert reply.status_code == 400
        assert "Could not extract model ID" in reply.json()["error"]["message"]
    outside = httpx.post(f"{gateway_url}/api/models/analyze", json={"content": "/nope/model.gguf"}, headers=auth)
    assert outside.status_code == 403
    assert "must be inside the model cache" in outside.json()["error"]["message"]
    absent = str(smollm2_gguf.parent / "absent.gguf")
    missing = httpx.post(f"{gateway_url}/api/models/analyze", json={"content": absent}, headers=auth)
    assert missing.status_code == 404


def test_api_keys_parse_and_never_show_in_errors_or_repr() -> None:
    from kubeinfer.gateway.auth import KeyRing, parse_api_keys

    assert parse_api_keys("k1=projectA, k2=projectB\n# comment\nk3=projectA") == {
        "k1": "projectA",
        "k2": "projectB",
        "k3": "projectA",
    }
    with pytest.raises(ValueError, match="key=project") as info:
        parse_api_keys("sk-secret-without-project")
    assert "sk-secret" not in str(info.value)
    ring = KeyRing({"sk-secret": "p"}, insecure_no_auth=False)
    assert "sk-secret" not in repr(ring)
    assert ring.project_of("sk-secret") == "p"


def test_engine_errors_reach_the_client_in_openai_s_shape(gateway_url: str) -> None:
    """Found by schemathesis: llama-server's own error body has an integer `code` and no `param`, and its 501
    for embeddings (no `--embeddings`) is a 5xx that clients retry; the gateway answers both as OpenAI does."""
    headers = {"Authorization": f"Bearer {KEY_A}"}
    reply = httpx.post(
        f"{gateway_url}/v1/completions", headers=headers, json={"model": MODEL, "prompt": {}, "max_tokens": 4}
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] is None or isinstance(error["code"], str)
    assert "prompt" in error["message"]

    reply = httpx.post(f"{gateway_url}/v1/embeddings", headers=headers, json={"model": MODEL, "input": "hi"})
    assert reply.status_code == 404, reply.text
    assert reply.json()["error"]["code"] == "endpoint_not_supported"
    assert "embeddings" in reply.json()["error"]["message"]
