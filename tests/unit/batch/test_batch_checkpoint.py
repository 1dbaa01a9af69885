"""Result logs as checkpoints: torn final lines are cut, the done-set is rebuilt, nothing is counted twice."""

from __future__ import annotations

import json
from pathlib import Path

from kubeinfer.batch.checkpoint import ResultLog
from kubeinfer.batch.schedule import prefix_key
from kubeinfer.batch.shards import plan, shard_offsets


def result(custom_id: str, prompt: int = 3, completion: int = 2) -> dict[str, object]:
    body = {"usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
    return {"id": "x", "custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}


def test_recover_rebuilds_done_set_and_tokens(tmp_path: Path) -> None:
    log = ResultLog(tmp_path / "out.jsonl")
    for cid in ("a", "b"):
        log.append(result(cid))
    log.close()
    state = ResultLog(tmp_path / "out.jsonl").recover()
    assert state.done == {"a", "b"}
    assert state.lines == 2
    assert (state.prompt_tokens, state.completion_tokens) == (6, 4)
    assert state.truncated_bytes == 0


def test_torn_final_line_is_truncated_so_the_request_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    log = ResultLog(path)
    log.append(result("a"))
    log.close()
    intact = path.read_bytes()
    path.write_bytes(intact + json.dumps(result("b")).encode()[:25])  # killed mid-write
    state = ResultLog(path).recover()
    assert state.done == {"a"}
    assert state.truncated_bytes == 25
    assert path.read_bytes() == intact
    log = ResultLog(path)
    log.append(result("b"))
    log.close()
    assert [json.loads(x)["custom_id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_garbage_line_cuts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(result("a")) + "\n{garbage\n" + json.dumps(result("c")) + "\n")
    state = ResultLog(path).recover()
    assert state.done == {"a"}
    assert path.read_text().count("\n") == 1


def test_missing_log_recovers_empty(tmp_path: Path) -> None:
    assert ResultLog(tmp_path / "none.jsonl").recover().lines == 0


def test_offsets_of_a_whole_batch_skip_done_and_group_by_system_prompt(tmp_path: Path) -> None:
    def chat(cid: str, system: str) -> str:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": cid}]
        return json.dumps({"custom_id": cid, "body": {"messages": msgs}}) + "\n"

    rows = [chat("1", "A"), chat("2", "B"), chat("3", "A"), "\n", chat("4", "B"), chat("5", "A")]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(rows))
    order = []
    with path.open("rb") as handle:
        for offset in shard_offsets(path, plan(5, 1, 0), done={"3"}):
            handle.seek(offset)
            order.append(json.loads(handle.readline())["custom_id"])
    assert order == ["1", "5", "2", "4"]


def test_prefix_key_ignores_user_turn_and_handles_completions() -> None:
    a = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}]}
    b = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "y"}]}
    assert prefix_key(a) == prefix_key(b) != ""
    assert prefix_key({"messages": [{"role": "user", "content": "x"}]}) == ""
    assert prefix_key({"prompt": "p" * 300}) == prefix_key({"prompt": "p" * 256 + "q"})
    assert prefix_key("nonsense") == ""
