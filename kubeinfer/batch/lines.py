"""The result lines of a batch, in OpenAI's output and error file shape: one place for both gateway modes."""

from __future__ import annotations

import secrets
from typing import Any

from kubeinfer.batch.engine import EngineReply

#: Messages of the error lines written for requests that never got an answer, by error code.
MISSING_MESSAGES = {
    "batch_expired": "This request could not be executed before the batch expired.",
    "worker_failed": "The batch's worker for this request failed too often; the request was not answered.",
}


def error_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A request that got no answer from the engine: no `response`, an `error` with the reason."""
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def missing_line(custom_id: str, code: str) -> dict[str, Any]:
    """The error line of a request never sent (`batch_expired`, `worker_failed`)."""
    return error_line(custom_id, code, MISSING_MESSAGES.get(code, code))


def reply_line(custom_id: str, reply: EngineReply) -> dict[str, Any]:
    """The engine's answer, whatever its status; the caller files it as output (200) or error."""
    return {
        "id": f"batch_req_{secrets.token_hex(12)}",
        "custom_id": custom_id,
        "response": {
            "status_code": reply.status_code,
            "request_id": reply.request_id or f"req_{secrets.token_hex(12)}",
            "body": reply.body,
        },
        "error": None,
    }
