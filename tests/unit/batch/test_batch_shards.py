"""Cluster batches without a cluster: shard plans, shard offsets, the merge's order, dedupe and missing lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.batch.merge import merge_batch, result_file_ids
from kubeinfer.batch.shards import BatchLayout, count_requests, plan, shard_offsets

BATCH = "batch-0123456789abcdef01234567"


def _request(i: int, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"q{i}"}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": messages},
    }


def _write_input(path: Path, requests: list[dict[str, Any]], blank_every: int = 0) -> Path:
    lines = []
    for n, request in enumerate(requests):
        lines.append(json.dumps(request))
        if blank_every and n % blank_every == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def _answer(custom_id: str, tokens: int = 1) -> dict[str, Any]:
    body = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}
    return {"id": "x", "custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}


def _failure(custom_id: str) -> dict[str, Any]:
    return {"id": "x", "custom_id": custom_id, "response": None, "error": {"code": "engine_unavailable"}}


@pytest.mark.parametrize(("total", "count"), [(10, 3), (7, 7), (3, 5), (10_000, 2), (0, 2)])
def test_shards_cover_every_request_exactly_once(total: int, count: int) -> None:
    shards = [plan(total, count, i) for i in range(count)]
    covered = [n for s in shards for n in range(s.start, s.end)]
    assert covered == list(range(total))
    assert max(s.size for s in shards) - min(s.size for s in shards) <= 1


def test_shard_index_outside_the_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        plan(10, 2, 2)


def test_shard_offsets_skip_blank_lines_and_done_requests_and_group_prefixes(tmp_path: Path) -> None:
    requests = [_request(i, system="A" if i % 2 else "B") for i in range(8)]
    path = _write_input(tmp_path / "in.jsonl", requests, blank_every=3)
    assert count_requests(path) == 8
    shard = plan(8, 2, 1)  # requests 4..7
    offsets = shard_offsets(path, shard, done={"r5"})
    with path.open("rb") as handle:
        ids = []
        for offset in offsets:
            handle.seek(offset)
            ids.append(json.loads(handle.readline())["custom_id"])
    assert ids == ["r4", "r6", "r7"]  # system B (r4, r6) first appeared first, then system A (r7)


def test_merge_writes_input_order_once_per_custom_id_and_drops_torn_and_duplicate_lines(tmp_path: Path) -> None:
    requests = [_request(i) for i in range(6)]
    path = _write_input(tmp_path / "in.jsonl", requests)
    layout = BatchLayout(tmp_path / "data", BATCH)
    out0, err0 = layout.logs(0)
    out1, _ = layout.logs(1)
    for line in (_answer("r2"), _answer("r0", tokens=3)):
        out0.append(line)
    err0.append(_failure("r1"))
    out1.append(_answer("r4"))
    out1.append(_answer("r4"))  # a duplicate must never reach the output
    out1.append(_answer("r3"))
    for log in (out0, err0, out1):
        log.close()
    with out1.path.open("ab") as handle:  # a worker killed mid-write
        handle.write(b'{"custom_id": "r5", "resp')

    merged = merge_batch(layout, path, missing_code="batch_expired")

    output_id, error_id = result_file_ids(BATCH)
    assert (merged.output_file_id, merged.error_file_id) == (output_id, error_id)
    output = [json.loads(x) for x in (layout.blobs / output_id).read_text().splitlines()]
    errors = [json.loads(x) for x in (layout.blobs / error_id).read_text().splitlines()]
    assert [x["custom_id"] for x in output] == ["r0", "r2", "r3", "r4"]
    assert [x["custom_id"] for x in errors] == ["r1", "r5"]
    assert errors[1]["error"]["code"] == "batch_expired"
    assert (merged.total, merged.completed, merged.failed, merged.duplicates) == (6, 4, 2, 1)
    assert (merged.prompt_tokens, merged.completion_tokens) == (40, 6)
    assert not list(layout.work.glob(".merge-*"))


def test_merge_of_a_cancelled_batch_writes_no_line_for_unsent_requests(tmp_path: Path) -> None:
    path = _write_input(tmp_path / "in.jsonl", [_request(i) for i in range(3)])
    layout = BatchLayout(tmp_path / "data", BATCH)
    out, _ = layout.logs(0)
    out.append(_answer("r1"))
    out.close()
    merged = merge_batch(layout, path, missing_code=None)
    assert (merged.completed, merged.failed, merged.error_file_id) == (1, 0, None)
    again = merge_batch(layout, path, missing_code=None)  # idempotent: a merge Job retried after a kill
    assert again == merged
    assert (layout.blobs / result_file_ids(BATCH)[0]).read_text().count("\n") == 1


def test_merge_without_any_shard_log_answers_every_request_with_the_missing_code(tmp_path: Path) -> None:
    path = _write_input(tmp_path / "in.jsonl", [_request(i) for i in range(2)])
    layout = BatchLayout(tmp_path / "data", BATCH)
    merged = merge_batch(layout, path, missing_code="worker_failed")
    assert (merged.completed, merged.failed, merged.output_file_id) == (0, 2, None)
    lines = (layout.blobs / result_file_ids(BATCH)[1]).read_text().splitlines()
    assert [json.loads(x)["error"]["code"] for x in lines] == ["worker_failed", "worker_failed"]
