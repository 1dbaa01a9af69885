"""The "new batch" form: its fields as typed, and the `BatchCreate` body the API would receive from them.

Metadata is typed as `key=value` lines; everything else is checked by the API's own `BatchCreate` model,
so the form refuses what `POST /v1/batches` refuses, with the same `param: message` text.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from kubeinfer.batch.validation import SUPPORTED_ENDPOINTS
from kubeinfer.gateway.schemas import BatchCreate

ENDPOINTS = SUPPORTED_ENDPOINTS


class InvalidBatchForm(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param, self.message = param, message


@dataclass(frozen=True)
class BatchForm:
    endpoint: str = "/v1/chat/completions"
    completion_window: str = "24h"
    metadata: str = ""
    input_file_id: str = ""

    @classmethod
    def of(cls, fields: dict[str, str]) -> BatchForm:
        """A field the form did not send keeps its default, as a field the API body leaves out does."""
        default = cls()
        return cls(
            endpoint=fields.get("endpoint", default.endpoint),
            completion_window=fields.get("completion_window", default.completion_window),
            metadata=fields.get("metadata", ""),
            input_file_id=fields.get("input_file_id", "").strip(),
        )


def parse_metadata(text: str) -> dict[str, str] | None:
    """`key=value` per line (blank lines skipped); None when there is none."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidBatchForm("metadata", f"metadata: line {number} is not key=value: {line.strip()[:80]!r}")
        if key.strip() in pairs:
            raise InvalidBatchForm("metadata", f"metadata: line {number} repeats the key {key.strip()[:64]!r}")
        pairs[key.strip()] = value.strip()
    return pairs or None


def input_file(form: BatchForm, uploaded_id: str | None) -> str:
    """The batch's input: the file the form uploaded, or the uploaded file it picked; exactly one."""
    if uploaded_id is not None and form.input_file_id:
        raise InvalidBatchForm("file", "choose a file to upload or an uploaded file, not both")
    chosen = uploaded_id or form.input_file_id
    if not chosen:
        raise InvalidBatchForm("file", "choose a JSONL file to upload (an empty file has no requests)")
    return chosen


def batch_body(form: BatchForm, uploaded_id: str | None) -> BatchCreate:
    """The API's request body; problems are raised as `param: message`, as `POST /v1/batches` words them."""
    input_file_id = input_file(form, uploaded_id)
    metadata = parse_metadata(form.metadata)
    try:
        return BatchCreate.model_validate(
            {
                "input_file_id": input_file_id,
                "endpoint": form.endpoint,
                "completion_window": form.completion_window,
                "metadata": metadata,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else "form"
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidBatchForm(param, f"{where}: {first['msg']}") from None
