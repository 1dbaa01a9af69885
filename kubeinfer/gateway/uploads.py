"""Stream a multipart upload's file part straight to storage, never holding the file in memory.

Starlette's `request.form()` spools the whole file to a temporary file before the route runs, so the
size limit would only apply after the upload landed on disk; parsing the stream here lets the store
stop at the limit and answer 413 while the client is still sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from kubeinfer.gateway.errors import ApiError

#: Largest non-file form field kept (purpose, expires_after...).
MAX_FIELD_BYTES = 64 * 1024


class MultipartUpload:
    def __init__(self, request: Request) -> None:
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise ApiError(400, "expected a multipart/form-data body with a 'file' part", "invalid_request")
        self.request = request
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._pending: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._name = ""
        self._is_file = False
        self._buffer = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers, self._buffer, self._is_file = {}, bytearray(), False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self._name != "file" or self.filename is not None:
                raise ApiError(400, "exactly one file part named 'file' is expected", "invalid_request", "file")
            self._is_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace") or "upload.jsonl"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._pending.append(data[start:end])
        elif len(self._buffer) + end - start > MAX_FIELD_BYTES:
            raise ApiError(400, f"form field '{self._name}' is too long", "invalid_request", self._name)
        else:
            self._buffer += data[start:end]

    def _part_end(self) -> None:
        if not self._is_file:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def _write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, f"the multipart body is malformed: {exc}", "invalid_multipart") from None

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive; raising ends the upload, and the store then keeps nothing."""
        async for chunk in self.request.stream():
            self._write(chunk)
            if self._pending:
                yield b"".join(self._pending)
                self._pending.clear()
        if self._parser.state != MultipartState.END:
            # a body cut short (a client killed mid-upload, a proxy's limit) must not be stored as a whole file
            raise ApiError(
                400,
                "the multipart body ends before its closing boundary: the upload is incomplete",
                "invalid_multipart",
            )
        self._parser.finalize()
        if self._pending:
            yield b"".join(self._pending)
            self._pending.clear()
