"""Validate a batch input file the way OpenAI's Batch API does, streaming it line by line.

Every problem is reported with its 1-based line number, in the shape of OpenAI's `BatchError`
(`code`, `message`, `param`, `line`), so a client can point the user at the offending line.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Endpoints a batch may target; llama-server answers embeddings only when started with --embeddings.
SUPPORTED_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")

#: OpenAI's limit on requests per batch.
MAX_REQUESTS = 50_000


@dataclass
class ValidationReport:
    total: int = 0
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def validate_input(
    path: Path,
    endpoint: str,
    known_models: Collection[str] | None = None,
    max_errors: int = 100,
    max_requests: int = MAX_REQUESTS,
) -> ValidationReport:
    """Check every line; stop collecting after `max_errors` problems (the count still says more exist)."""
    report = ValidationReport()
    seen: set[str] = set()
    extra_errors = 0

    def add(err: dict[str, Any]) -> None:
        nonlocal extra_errors
        if len(report.errors) < max_errors:
            report.errors.append(err)
        else:
            extra_errors += 1

    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            report.total += 1
            try:
                request = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                add(_error("invalid_json_line", f"Line {number} is not valid JSON: {exc}", number))
                continue
            if not isinstance(request, dict):
                add(_error("invalid_json_line", f"Line {number} is not a JSON object", number))
                continue
            for err in _check_request(request, number, endpoint, seen, report, known_models):
                add(err)
    if report.total == 0:
        add(_error("empty_file", "The input file contains no requests", None))
    elif report.total > max_requests:
        add(_error("too_many_requests", f"{report.total} requests exceed the limit of {max_requests}", None))
    if extra_errors:
        add_more = f"{extra_errors} more errors not listed"
        report.errors.append(_error("too_many_errors", add_more, None))
    return report


def _check_request(
    request: dict[str, Any],
    number: int,
    endpoint: str,
    seen: set[str],
    report: ValidationReport,
    known_models: Collection[str] | None,
) -> list[dict[str, Any]]:
    errors = []
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        errors.append(_error("missing_custom_id", f"Line {number} has no custom_id string", number, "custom_id"))
    elif custom_id in seen:
        errors.append(
            _error("duplicate_custom_id", f"Line {number} repeats custom_id '{custom_id}'", number, "custom_id")
        )
    else:
        seen.add(custom_id)
    method = request.get("method")
    if method != "POST":
        errors.append(_error("invalid_method", f"Line {number}: method must be POST, got {method!r}", number, "method"))
    url = request.get("url")
    if url != endpoint:
        errors.append(
            _error(
                "invalid_url",
                f"Line {number}: url {url!r} does not match the batch endpoint '{endpoint}'",
                number,
                "url",
            )
        )
    body = request.get("body")
    if not isinstance(body, dict):
        errors.append(_error("invalid_body", f"Line {number}: body must be a JSON object", number, "body"))
        return errors
    model = body.get("model")
    if not isinstance(model, str) or not model:
        errors.append(_error("missing_model", f"Line {number}: body.model is required", number, "body.model"))
    elif report.model is None:
        report.model = model
        if known_models is not None and model not in known_models:
            served = ", ".join(sorted(known_models)) or "none"
            errors.append(
                _error(
                    "model_not_found",
                    f"Line {number}: model '{model}' does not exist; served models: {served}",
                    number,
                    "body.model",
                )
            )
    elif model != report.model:
        errors.append(
            _error(
                "mismatched_model",
                f"Line {number}: model '{model}' differs from '{report.model}' on an earlier line; "
                "a batch must use one model",
                number,
                "body.model",
            )
        )
    return errors
