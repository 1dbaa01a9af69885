"""Request-body limits, checked as the body streams in: a declared size over the limit is refused unread.

JSON bodies (inference, batches, Label Studio, the console's forms) may be `max_request_bytes`; multipart
uploads `max_upload_bytes` plus the multipart framing, the store itself enforcing the file's own limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubeinfer.gateway.errors import RequestTooLarge, error_body

#: Multipart framing allowed on top of the file itself before the body as a whole is over the limit.
ENVELOPE_BYTES = 64 * 1024


class BodyLimit:
    """ASGI middleware: 413 in OpenAI's shape for a body over its limit, without reading more of it."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit(self, scope: Scope) -> RequestTooLarge:
        """The error this request gets once over its limit (which the error carries)."""
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            return RequestTooLarge(self.max_upload_bytes + ENVELOPE_BYTES, "KUBEINFER_GATEWAY__MAX_UPLOAD_BYTES", True)
        return RequestTooLarge(self.max_request_bytes, "KUBEINFER_GATEWAY__MAX_REQUEST_BYTES")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self._limit(scope)
        limit = error.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, error)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise error
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, exc: RequestTooLarge) -> None:
    """The 413 for a declared size, sent before the app runs; the connection closes (the body is unread)."""
    body = json.dumps(error_body(str(exc.detail), "invalid_request_error", exc.code, exc.param)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
