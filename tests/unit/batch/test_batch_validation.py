"""Batch input validation: every problem named with its line, as OpenAI reports it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubeinfer.batch.validation import validate_input

EP = "/v1/chat/completions"


def line(custom_id: str | None = "1", model: str = "m", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": EP,
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
    }
    return {**base, **over}


def write(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def codes(report: Any) -> list[tuple[str, int | None]]:
    return [(e["code"], e["line"]) for e in report.errors]


def test_valid_file_reports_count_and_model(tmp_path: Path) -> None:
    report = validate_input(write(tmp_path, [line("a"), "", line("b")]), EP, {"m"})
    assert report.ok
    assert report.total == 2
    assert report.model == "m"


def test_each_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    rows = [
        line("a"),
        "{oops",
        line("a"),
        line("c", method="PUT"),
        line("d", url="/v1/embeddings"),
        line(None),
        line("f", model="other"),
        line("g", body="text"),
        line("h", body={"messages": []}),
    ]
    report = validate_input(write(tmp_path, rows), EP, {"m"})
    assert codes(report) == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("invalid_method", 4),
        ("invalid_url", 5),
        ("missing_custom_id", 6),
        ("mismatched_model", 7),
        ("invalid_body", 8),
        ("missing_model", 9),
    ]


def test_unknown_model_is_named(tmp_path: Path) -> None:
    report = validate_input(write(tmp_path, [line("a", model="gpt-9")]), EP, {"m"})
    assert codes(report) == [("model_not_found", 1)]
    assert "gpt-9" in report.errors[0]["message"]
    assert "m" in report.errors[0]["message"]


def test_empty_file_fails(tmp_path: Path) -> None:
    assert codes(validate_input(write(tmp_path, []), EP)) == [("empty_file", None)]


def test_error_list_is_capped_with_a_summary(tmp_path: Path) -> None:
    report = validate_input(write(tmp_path, ["nope"] * 10), EP, max_errors=3)
    assert len(report.errors) == 4
    assert report.errors[-1]["code"] == "too_many_errors"
    assert "7 more" in report.errors[-1]["message"]


def test_request_limit(tmp_path: Path) -> None:
    report = validate_input(write(tmp_path, [line(str(i)) for i in range(3)]), EP, max_requests=2)
    assert codes(report) == [("too_many_requests", None)]
