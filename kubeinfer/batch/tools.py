"""Batch file tools (seed 004's workflow): CSV rows to batch JSONL, and a summary of a result file."""

from __future__ import annotations

import csv
import json
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


class TemplateError(ValueError):
    """A prompt template names a column the CSV does not have, or is malformed."""


def csv_requests(
    rows: TextIO,
    template: str,
    model: str,
    system: str | None = None,
    max_tokens: int | None = None,
    id_column: str | None = None,
    endpoint: str = "/v1/chat/completions",
) -> Iterator[dict[str, Any]]:
    """One request per CSV row; `template` uses `{column}` fields (str.format syntax)."""
    reader = csv.DictReader(rows)
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = fields - set(reader.fieldnames or [])
    if missing:
        raise TemplateError(f"template uses columns missing from the CSV: {', '.join(sorted(missing))}")
    if id_column and id_column not in (reader.fieldnames or []):
        raise TemplateError(f"id column '{id_column}' is not in the CSV")
    for number, row in enumerate(reader, start=1):
        prompt = template.format(**row)
        body: dict[str, Any] = {"model": model}
        if endpoint == "/v1/completions":
            body["prompt"] = prompt
        else:
            messages = [{"role": "system", "content": system}] if system else []
            body["messages"] = [*messages, {"role": "user", "content": prompt}]
        if max_tokens:
            body["max_tokens"] = max_tokens
        custom_id = row[id_column] if id_column else f"row-{number}"
        yield {"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body}


def summarize(path: Path) -> dict[str, Any]:
    """Counts, status codes, token totals and finish reasons of an output or error JSONL file."""
    lines = ok = 0
    statuses: Counter[str] = Counter()
    finish: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    prompt = completion = 0
    with path.open() as handle:
        for raw in handle:
            if not raw.strip():
                continue
            lines += 1
            line = json.loads(raw)
            response = line.get("response") or {}
            status = response.get("status_code")
            statuses[str(status)] += 1
            if line.get("error"):
                errors[str(line["error"].get("code"))] += 1
            body = response.get("body") or {}
            if status == 200:
                ok += 1
                usage = body.get("usage") or {}
                prompt += int(usage.get("prompt_tokens", 0))
                completion += int(usage.get("completion_tokens", 0))
                for choice in body.get("choices") or []:
                    finish[str(choice.get("finish_reason"))] += 1
    return {
        "lines": lines,
        "succeeded": ok,
        "success_rate": round(ok / lines, 4) if lines else None,
        "status_codes": dict(statuses),
        "error_codes": dict(errors),
        "finish_reasons": dict(finish),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "avg_completion_tokens": round(completion / ok, 2) if ok else None,
    }
