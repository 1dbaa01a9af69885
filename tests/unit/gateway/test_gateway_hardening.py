"""The gateway's limits and error answers, in process with no engine: body sizes, metadata, multipart,
unknown routes, failed-auth throttling, Label Studio jobs per project, deleting a batch's input, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kubeinfer.batch.validation import SUPPORTED_ENDPOINTS
from kubeinfer.gateway.app import create_app
from kubeinfer.gateway.context import GatewayContext
from kubeinfer.gateway.schemas import BatchCreate
from kubeinfer.settings import GatewaySettings, Settings
from kubeinfer.storage.files import UPLOAD_PURPOSES
from kubeinfer.storage.records import BatchRecord

A, B = {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}
LIMIT = 1024 * 1024
FAILURES = 5
MODEL = "smollm2-135m"
BOUNDARY = "xyzzy"


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    gateway = GatewaySettings(
        data_dir=tmp_path,
        api_keys="sk-a=projectA,sk-b=projectB",
        max_request_bytes=LIMIT,
        max_upload_bytes=LIMIT,
        auth_failures_max=FAILURES,
        model=MODEL,
    )
    return create_app(Settings(gateway=gateway), engine_url="http://127.0.0.1:9")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def assert_openai_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


def upload(client: TestClient, content: bytes = b'{"a": 1}\n', headers: dict[str, str] = A) -> str:
    reply = client.post("/v1/files", headers=headers, files={"file": ("in.jsonl", content)}, data={"purpose": "batch"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["id"])


def multipart(*parts: str, close: bool = True) -> bytes:
    body = "".join(f"--{BOUNDARY}\r\n{part}\r\n" for part in parts)
    return (body + (f"--{BOUNDARY}--\r\n" if close else "")).encode()


FILE_PART = 'Content-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n{"a": 1}\n{"b": 2}'
PURPOSE_PART = 'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch'
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **A}


# 2. request bodies
def test_declared_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * (2 * LIMIT)}]})
    reply = client.post("/v1/chat/completions", headers=A, content=body)
    error = assert_openai_error(reply, 413, "request_too_large")
    assert "KUBEINFER_GATEWAY__MAX_REQUEST_BYTES" in error["message"]
    reply = client.post("/v1/batches", headers=A, content=b"{" + b" " * (2 * LIMIT) + b"}")
    assert_openai_error(reply, 413, "request_too_large")


def test_undeclared_body_over_the_limit_stops_being_read_at_the_limit(client: TestClient, app: FastAPI) -> None:
    """A chunked body with no Content-Length: the gateway stops reading one chunk past the limit."""
    chunk = b" " * (256 * 1024)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read == 1:
            return {"type": "http.request", "body": b'{"model": "' + MODEL.encode() + b'", "x": "', "more_body": True}
        return {"type": "http.request", "body": chunk, "more_body": read < 400}  # 100 MiB if read to the end

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer sk-a"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    portal = client.portal
    assert portal is not None
    portal.call(app, scope, receive, send)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["error"]["code"] == "request_too_large"
    assert read <= LIMIT // len(chunk) + 2


# 4. metadata
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata has 17 keys, at most 16"),
        ({"k" * 65: "v"}, "has 65 characters, at most 64"),
        ({"key": "v" * 513}, "metadata['key'] has 513 characters, at most 512"),
        ({"key": "v" * (8 * 1024)}, "metadata['key'] has 8192 characters"),
    ],
)
def test_batch_metadata_over_openai_limits_is_400_naming_the_field(
    client: TestClient, metadata: dict[str, str], message: str
) -> None:
    file_id = upload(client)
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "metadata": metadata}
    error = assert_openai_error(client.post("/v1/batches", headers=A, json=body), 400, "invalid_request")
    assert error["param"] == "metadata"
    assert message in error["message"]
    assert len(error["message"]) < 300  # a long key or value is never echoed whole


def test_batch_metadata_at_the_limits_is_accepted(client: TestClient) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    body = {"input_file_id": upload(client), "endpoint": "/v1/chat/completions", "metadata": metadata}
    reply = client.post("/v1/batches", headers=A, json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["metadata"] == metadata


# 6, 7. multipart
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (multipart('Content-Disposition: form-data; name="file"; filename="' + "a" * 5000 + '"\r\n\r\nx'), "malformed"),
        (b"--" + BOUNDARY.encode() + b"\r\nno header end" + b"\x00" * 100, "malformed"),
        (b"garbage without any boundary", "malformed"),
        (multipart(PURPOSE_PART, FILE_PART, close=False), "closing boundary"),
        (multipart(FILE_PART, PURPOSE_PART, close=False), "closing boundary"),
    ],
)
def test_malformed_or_truncated_multipart_is_400_and_stores_nothing(
    client: TestClient, body: bytes, message: str
) -> None:
    before = client.get("/v1/files", headers=A).json()["data"]
    error = assert_openai_error(client.post("/v1/files", headers=MULTIPART, content=body), 400)
    assert message in error["message"]
    assert client.get("/v1/files", headers=A).json()["data"] == before


def test_complete_multipart_is_stored(client: TestClient) -> None:
    reply = client.post("/v1/files", headers=MULTIPART, content=multipart(PURPOSE_PART, FILE_PART))
    assert reply.status_code == 200, reply.text
    assert client.get(f"/v1/files/{reply.json()['id']}/content", headers=A).content == b'{"a": 1}\n{"b": 2}'


# error shape
def test_unknown_routes_and_methods_answer_in_openai_s_error_shape(client: TestClient) -> None:
    error = assert_openai_error(client.get("/v1/nothing", headers=A), 404, "not_found")
    assert "/v1/nothing" in error["message"]
    assert_openai_error(client.delete("/v1/batches", headers=A), 405, "method_not_allowed")
    assert_openai_error(client.post("/v1/models", headers=A), 405, "method_not_allowed")


def test_a_405_s_allow_header_lists_every_method_of_the_path_not_only_the_first_route_s(client: TestClient) -> None:
    # found by schemathesis (Allow header mismatch): /v1/files has a POST route and a GET route
    assert client.request("OPTIONS", "/v1/files", headers=A).headers["Allow"] == "GET, POST"
    assert client.request("PATCH", "/v1/files/file-x", headers=A).headers["Allow"] == "DELETE, GET"
    assert client.request("PUT", "/v1/batches/b/cancel", headers=A).headers["Allow"] == "POST"


# failed-auth throttling
def test_repeated_wrong_keys_from_one_address_are_throttled_with_retry_after(client: TestClient) -> None:
    for _ in range(FAILURES):
        assert_openai_error(client.get("/v1/files", headers={"Authorization": "Bearer wrong"}), 401)
    reply = client.get("/v1/files", headers={"Authorization": "Bearer wrong"})
    assert_openai_error(reply, 429, "too_many_auth_failures")
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    # while throttled no key is compared, the right one included, so guessing gets no answer
    assert_openai_error(client.get("/v1/files", headers=A), 429)
    assert_openai_error(client.post("/labelstudio/jobs", headers={"Authorization": "Bearer wrong"}), 405)
    assert_openai_error(client.get("/labelstudio/jobs", headers={"Authorization": "Bearer wrong"}), 429)


# 3. Label Studio jobs per gateway project
SENTIMENT = (
    '<View><Text name="review" value="$review"/><Choices name="sentiment" toName="review">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)


def test_label_studio_webhook_jobs_are_kept_apart_per_gateway_project(client: TestClient) -> None:
    setup = {"project": 7, "schema": SENTIMENT, "hostname": "http://127.0.0.1:9", "access_token": "t"}
    for headers in (A, B):
        assert client.post("/labelstudio/setup", headers=headers, json=setup).status_code == 200
    hook = {"action": "TASKS_CREATED", "project": {"id": 7}, "tasks": [{"id": 1, "data": {"review": "good"}}]}
    first_a = client.post("/labelstudio/webhook", headers=A, json=hook).json()
    first_b = client.post("/labelstudio/webhook", headers=B, json=hook).json()
    again_a = client.post("/labelstudio/webhook", headers=A, json=hook).json()
    assert not first_a["duplicate"]
    assert not first_b["duplicate"]
    assert first_b["job"] != first_a["job"]
    assert again_a == {**again_a, "job": first_a["job"], "duplicate": True}
    jobs_a = [j["id"] for j in client.get("/labelstudio/jobs", headers=A).json()["data"]]
    jobs_b = [j["id"] for j in client.get("/labelstudio/jobs", headers=B).json()["data"]]
    assert jobs_a == [first_a["job"]]
    assert jobs_b == [first_b["job"]]


# 5. deleting a batch's input
@pytest.mark.parametrize("status", ["validating", "in_progress", "finalizing", "cancelling"])
def test_input_of_an_unfinished_batch_cannot_be_deleted(client: TestClient, app: FastAPI, status: str) -> None:
    file_id = upload(client)
    ctx: GatewayContext = app.state.ctx
    rec = BatchRecord("batch-held", "projectA", "/v1/chat/completions", file_id, "24h", status=status)
    ctx.meta.add_batch(rec)
    error = assert_openai_error(client.delete(f"/v1/files/{file_id}", headers=A), 409, "file_in_use")
    assert "batch-held" in error["message"]
    assert client.get(f"/v1/files/{file_id}/content", headers=A).content == b'{"a": 1}\n'
    rec.status = "completed"
    ctx.meta.save_batch(rec)
    assert client.delete(f"/v1/files/{file_id}", headers=A).json()["deleted"] is True


# OpenAPI
def test_openapi_enums_and_bodies_are_the_real_ones(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert get_args(BatchCreate.model_fields["endpoint"].annotation) == SUPPORTED_ENDPOINTS
    create = doc["components"]["schemas"]["BatchCreate"]["properties"]
    assert tuple(create["endpoint"]["enum"]) == SUPPORTED_ENDPOINTS
    assert create["completion_window"].get("enum", [create["completion_window"].get("const")]) == ["24h"]
    metadata = next(s for s in create["metadata"]["anyOf"] if s.get("type") == "object")
    assert metadata["maxProperties"] == 16
    assert metadata["propertyNames"]["maxLength"] == 64
    assert metadata["additionalProperties"]["maxLength"] == 512
    upload_schema = doc["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload_schema["properties"]["purpose"]["enum"] == sorted(UPLOAD_PURPOSES)
    for path, field in (
        ("/v1/chat/completions", "messages"),
        ("/v1/completions", "prompt"),
        ("/v1/embeddings", "input"),
    ):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["model", field]
        assert set(doc["paths"][path]["post"]["responses"]["200"]["content"]) == {
            "application/json",
            "text/event-stream",
        }


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_route_answers_only_statuses_its_openapi_operation_documents(client: TestClient) -> None:
    """Walk every operation: without a key, with a key and unknown ids, with an empty body; each answer's
    status must be documented, and each error documented with OpenAI's error body."""
    doc = client.get("/openapi.json").json()
    walked = 0
    for path, method, operation in _operations(doc):
        responses = operation["responses"]
        assert "500" in responses, (method, path)
        for code, response in responses.items():
            if code.startswith(("4", "5")) or code == "default":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse", (method, path, code)
        url = path.replace("{", "").replace("}", "-none")
        body = {"json": {}} if "requestBody" in operation else {}
        for headers in ({}, A):
            reply = client.request(method.upper(), url, headers=headers, **body)
            status = str(reply.status_code)
            assert status in responses or "default" in responses, (method, path, status, reply.text[:200])
            if reply.status_code >= 400:
                assert_openai_error(reply, reply.status_code)
            walked += 1
    assert walked > 40


# found by schemathesis against the live gateway (tests/engine/test_gateway_fuzz.py)
def test_analyze_refuses_figures_whose_estimate_would_not_be_a_number(client: TestClient) -> None:
    # memory_gb 1e308 made available_gb infinite, answered as null where the schema promises a number
    for extra in ({"memory_gb": 1.5e308}, {"ctx_size": 1 << 40}, {"parallel": 1 << 40}):
        reply = client.post("/api/models/analyze", headers=A, json={"content": MODEL, **extra})
        assert_openai_error(reply, 400, "invalid_request")


def test_analyze_refuses_a_repo_name_the_hub_would_refuse_as_400_not_a_hub_error(client: TestClient) -> None:
    for content in ("a/SrJNl-", "org/-model", "org/mo..del", "org/model.git", "org/" + "m" * 97, "just-a-word"):
        reply = client.post("/api/models/analyze", headers=A, json={"content": content})
        assert "Could not extract model ID" in assert_openai_error(reply, 400, "invalid_model_reference")["message"]


def test_analyze_of_a_catalog_model_missing_from_the_cache_is_404_saying_so(tmp_path: Path) -> None:
    gateway = GatewaySettings(data_dir=tmp_path / "gw", api_keys="sk-a=projectA", model=MODEL)
    settings = Settings(cache_dir=tmp_path / "cache", model_dir=tmp_path / "cache" / "models", gateway=gateway)
    app = create_app(settings, engine_url="http://127.0.0.1:9")
    with TestClient(app) as client:
        reply = client.post("/api/models/analyze", headers=A, json={"content": MODEL})
    error = assert_openai_error(reply, 404, "model_not_found")
    assert "not in the model cache" in error["message"]


def test_chat_messages_of_the_wrong_shape_are_400_before_the_engine(client: TestClient) -> None:
    # llama-server answers a role that is not a string with a 500, which clients retry
    for messages, param in (
        ([{"role": {}, "content": ""}], "messages.0.role"),
        ([{"role": "user", "content": 5}], "messages.0.content"),
        (["hi"], "messages.0"),
        ([], "messages"),
    ):
        reply = client.post("/v1/chat/completions", headers=A, json={"model": MODEL, "messages": messages})
        assert assert_openai_error(reply, 400, "invalid_request")["param"] == param
