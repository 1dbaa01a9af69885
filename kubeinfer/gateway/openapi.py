"""The OpenAPI document as the gateway really answers: its error statuses, and the inference request bodies.

FastAPI documents 200 and a 422 that the gateway never sends (validation errors are 400 in OpenAI's shape,
kubeinfer.gateway.errors). Here every operation gets the errors it can answer, each with OpenAI's error
body, from a few rules (authenticated: 401 and 429; parameters or a body: 400; a body: 413; an id in the
path: 404; everything: 500) plus the statuses particular routes add.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kubeinfer.gateway.schemas import PROJECT_ID_PATTERN

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Missing or wrong API key",
    403: "Not allowed for this project",
    404: "No such object (or another project's)",
    409: "Conflicts with the object's state",
    413: "Request body too large",
    422: "Recognised but not supported",
    429: "Too many failed authentication attempts from this address",
    500: "Internal error",
    502: "The engine or the Hub answered with an error",
    503: "The engine or the file storage is unavailable",
}

INFERENCE_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
_STORAGE_PREFIXES = ("/v1/files", "/v1/batches", "/v1/jobs")

#: Statuses particular operations answer beyond the rules.
_EXTRA: dict[tuple[str, str], set[int]] = {
    ("delete", "/v1/files/{file_id}"): {409},
    ("post", "/v1/batches"): {404},
    ("post", "/api/models/analyze"): {403, 404, 422, 502},
    ("post", "/v1/ops/workers/{name}/restart"): {403, 409},
    ("get", "/v1/ops/workers/{name}/logs"): {400},
    ("post", "/labelstudio/setup"): {401, 429},
    ("post", "/labelstudio/predict"): {401, 404, 429, 502, 503},
    ("post", "/labelstudio/webhook"): {401, 404, 429},
    ("get", "/labelstudio/jobs"): {401, 429},
}

_INFERENCE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "description": "A model this gateway serves (GET /v1/models)"},
        "stream": {"type": "boolean", "default": False},
    },
    "additionalProperties": True,
    "description": "Passed to the engine as it is; see OpenAI's API reference for the fields of each endpoint",
}
_TEXT_OR_TEXTS = {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": ["string", "null"]},
    },
}
_INFERENCE_FIELDS = {
    "/v1/chat/completions": ("messages", {"type": "array", "minItems": 1, "items": _MESSAGE}),
    "/v1/completions": ("prompt", _TEXT_OR_TEXTS),
    "/v1/embeddings": ("input", _TEXT_OR_TEXTS),
}
#: A request each inference route answers, shown in /docs and sent by fuzzers' example phase.
_INFERENCE_EXAMPLES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
    "/v1/completions": {"prompt": "The capital of France is", "max_tokens": 8},
    "/v1/embeddings": {"input": "kubeinfer"},
}


_TEXT = {"schema": {"type": "string"}}
#: Before OpenAPI 3.2 (`itemSchema`) the schema of a `text/event-stream` describes each event.
_SSE_EVENT = {
    "schema": {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "string", "description": "A JSON chunk; the last event's is [DONE]"}},
    }
}
#: Content types of success responses that are not JSON.
_CONTENT: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/v1/files/{file_id}/content"): {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    },
    ("get", "/v1/ops/workers/{name}/logs"): {"text/plain": _TEXT},
    **{
        ("post", path): {"application/json": {"schema": {"type": "object"}}, "text/event-stream": _SSE_EVENT}
        for path in INFERENCE_PATHS
    },
}


#: A Label Studio project id: a number, or the "<id>.<timestamp>" string `/setup` and `/predict` carry.
PROJECT_ID: list[dict[str, Any]] = [{"type": "integer"}, {"type": "string", "pattern": PROJECT_ID_PATTERN}]

#: Routes that read their JSON body themselves, so FastAPI cannot see it.
_WEBHOOK_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["action", "project", "tasks"],
                "properties": {
                    "action": {"type": "string", "enum": ["TASKS_CREATED"]},
                    "project": {
                        "oneOf": [
                            *PROJECT_ID,
                            {"type": "object", "required": ["id"], "properties": {"id": {"oneOf": PROJECT_ID}}},
                        ]
                    },
                    "tasks": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["id"],
                            "properties": {"id": {"type": "integer"}, "data": {"type": "object"}},
                        },
                    },
                },
            }
        }
    },
}


def _error_codes(path: str, method: str, operation: dict[str, Any]) -> set[int | str]:
    codes: set[int | str] = {500}
    if operation.get("security"):
        codes |= {401, 429}
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(400)
    if operation.get("requestBody"):
        codes.add(413)
    if "{" in path:
        codes.add(404)
    if path.startswith(_STORAGE_PREFIXES):
        codes.add(503)
    if path in INFERENCE_PATHS:
        codes |= {404, 503, "default"}  # the engine's own statuses pass through
    codes |= _EXTRA.get((method, path), set())
    return codes


def _inference_body(path: str, model: str) -> dict[str, Any]:
    field, schema = _INFERENCE_FIELDS[path]
    body = {**_INFERENCE_BODY, "properties": {**_INFERENCE_BODY["properties"], field: schema}}
    body["required"] = ["model", field]
    example = {"model": model, **_INFERENCE_EXAMPLES[path]}
    return {"required": True, "content": {"application/json": {"schema": body, "example": example}}}


def document(app: FastAPI, model: str) -> dict[str, Any]:
    """The app's OpenAPI document with its real error responses (cached on the app like FastAPI's);
    `model`, the served model, is the one the inference examples name."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if path in INFERENCE_PATHS and method == "post":
                operation["requestBody"] = _inference_body(path, model)
            elif (method, path) == ("post", "/labelstudio/webhook"):
                operation["requestBody"] = _WEBHOOK_BODY
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if (method, path) in _CONTENT:
                for status, response in responses.items():
                    if status.startswith("2"):
                        response["content"] = _CONTENT[(method, path)]
            for code in sorted(_error_codes(path, method, operation), key=str):
                description = _DESCRIPTIONS.get(code, "Error") if isinstance(code, int) else "The engine's answer"
                responses.setdefault(str(code), {"description": description, **error})
    app.openapi_schema = schema
    return schema
