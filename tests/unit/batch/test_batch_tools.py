"""CSV to batch JSONL and result summaries (seed 004's workflow tools)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kubeinfer.batch.tools import TemplateError, csv_requests, summarize


def test_csv_rows_become_requests_with_shared_system_prompt() -> None:
    rows = io.StringIO("id,name,skill\nc1,Ada,math\nc2,Linus,C\n")
    requests = list(csv_requests(rows, "Rate {name} at {skill}.", "m", system="Be fair.", max_tokens=5, id_column="id"))
    assert [r["custom_id"] for r in requests] == ["c1", "c2"]
    assert requests[0]["body"]["messages"] == [
        {"role": "system", "content": "Be fair."},
        {"role": "user", "content": "Rate Ada at math."},
    ]
    assert requests[1]["body"]["max_tokens"] == 5


def test_template_with_unknown_column_is_refused() -> None:
    with pytest.raises(TemplateError, match="age"):
        list(csv_requests(io.StringIO("name\nAda\n"), "{name} is {age}", "m"))


def test_summary_counts_tokens_statuses_and_errors(tmp_path: Path) -> None:
    ok = {
        "custom_id": "a",
        "error": None,
        "response": {
            "status_code": 200,
            "body": {"usage": {"prompt_tokens": 10, "completion_tokens": 4}, "choices": [{"finish_reason": "length"}]},
        },
    }
    bad = {"custom_id": "b", "response": None, "error": {"code": "engine_unavailable", "message": "x"}}
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(ok) + "\n" + json.dumps(bad) + "\n")
    summary = summarize(path)
    assert summary["lines"] == 2
    assert summary["succeeded"] == 1
    assert summary["completion_tokens"] == 4
    assert summary["error_codes"] == {"engine_unavailable": 1}
    assert summary["finish_reasons"] == {"length": 1}
