"""Sweeps, traffic scenarios and per-request records against the real llama-server (4 slots of 1024 tokens).

Nothing here depends on the machine's speed: the concurrency sweep steps past the server's 4 slots and asks
output throughput to double per level (saturationGainPercent 100), which more requests than slots cannot do,
so it stops at saturation on any machine; the assertions are about keys, order and recorded reasons.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubeinfer.bench.load.records import jsonl_sink, read_records
from kubeinfer.bench.outcome import record_sustainable
from kubeinfer.bench.profiles import PROFILE_RUNNERS, ProfileContext
from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.resources.benchmark_matrix import CellResult, Profiles

SLOT_CONTEXT = 1024
#: Requests of each level of the concurrency sweep: at 8 and 16 they are more than the 4 slots hold at once,
#: which is all saturation needs.
REQUESTS_PER_LEVEL = 8
REPORT_KEYS = (
    "ttft_seconds",
    "tokens_per_second",
    "ttft_p50_seconds",
    "ttft_p95_seconds",
    "ttft_p99_seconds",
    "itl_p50_seconds",
    "itl_p95_seconds",
    "e2e_p95_seconds",
    "goodput_rps",
)


def context(server: LlamaServer, profiles: dict[str, Any], records: Path) -> ProfileContext:
    return ProfileContext(
        base_url=server.base_url,
        model="smollm2-135m",
        profiles=Profiles.model_validate(profiles),
        server_pid=server.pid,
        max_context=SLOT_CONTEXT,
        records=jsonl_sink(records, "smollm2-135m_Q4_1"),
    )


@pytest.mark.slow
def test_concurrency_sweep_runs_levels_in_order_and_stops_at_saturation(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    interactive = {
        "maxTokens": 8,
        "traffic": {"scenario": "D(64,8)"},
        "sweep": {"concurrency": [16, 2, 8], "requestsPerLevel": REQUESTS_PER_LEVEL, "saturationGainPercent": 100},
        "slo": {"ttftSeconds": 1000, "itlSeconds": 1000},
    }
    result = PROFILE_RUNNERS["interactive"](context(llama_server, {"interactive": interactive}, tmp_path))
    m = result.metrics
    assert result.status in ("passed", "failed"), result.reason
    for key in REPORT_KEYS:
        assert isinstance(m[key], float), key
    labels = [level["label"] for level in m["levels"]]
    assert labels == ["concurrency 2", "concurrency 8", "concurrency 16"][: len(labels)]
    assert len(labels) >= 2
    (stop,) = m["saturation"]
    assert stop["saturated"] is True
    assert stop["level"] == labels[-1]
    assert stop["reason"].startswith("throughput: ")
    assert m["saturation_reason"] == f"concurrency: {stop['reason']}"
    assert m["levels"][-1]["sustainable"] is False
    assert m["levels"][0]["sustainable"] is True, m["levels"][0]
    assert m["sustainable"]["level"] in labels[:-1]
    assert all(level["requests"] == REQUESTS_PER_LEVEL and level["errors"] == 0 for level in m["levels"])
    assert all(level["meets_slo"] is True for level in m["levels"])
    assert m["traffic"]["scenario"] == "D(64,8)"
    assert m["traffic"]["output_tokens"] == {"mean": 8.0, "min": 8, "max": 8}
    assert 48 <= m["traffic"]["input_tokens"]["mean"] <= 80, m["traffic"]

    records = read_records(tmp_path / "smollm2-135m_Q4_1_interactive.jsonl")
    assert len(records) == REQUESTS_PER_LEVEL * len(labels)
    assert [r["level"] for r in records] == [label for label in labels for _ in range(REQUESTS_PER_LEVEL)]
    assert all(len(r["itl_seconds"]) == 7 and r["output_tokens"] == 8 for r in records)
    assert all(r["ttft_seconds"] <= r["e2e_seconds"] for r in records)

    cell = record_sustainable(CellResult(model="smollm2-135m", quantization="Q4_1", model_size_b=0.135))
    cell.profiles["interactive"] = result
    record_sustainable(cell)
    assert cell.max_sustainable_rps == m["sustainable"]["rps"]
    assert cell.max_sustainable_output_tokens_per_second == m["sustainable"]["output_tokens_per_second"]
    assert cell.max_sustainable_input_tokens_per_second == m["sustainable"]["input_tokens_per_second"]


def test_rate_sweep_with_turns_and_a_shared_prefix_records_what_was_sent(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    batch = {
        "maxTokens": 8,
        "traffic": {
            "scenario": "U(20,60)/(4,8)",
            "turns": 2,
            "sharedPrefixTokens": 128,
            "sharedPrefixShare": 1,
            "seed": 5,
        },
        "sweep": {"rates": [50, 100], "requestsPerLevel": 8},
    }
    result = PROFILE_RUNNERS["batch"](context(llama_server, {"batch": batch}, tmp_path))
    m = result.metrics
    assert result.status in ("passed", "failed"), result.reason
    assert m["levels"][0]["label"] == "rate 50/s"
    assert m["levels"][0]["offered_rps"] == 50
    (stop,) = m["saturation"]
    assert stop["kind"] == "rate"
    assert stop["reason"]
    assert "goodput_rps" not in m, "no SLO, no goodput"
    assert m["traffic"]["turns"] == 2
    assert m["traffic"]["prefixed_requests"] == m["traffic"]["requests"]
    assert m["documents"] > 0

    records = read_records(tmp_path / "smollm2-135m_Q4_1_batch.jsonl")
    by_conversation: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        by_conversation.setdefault((record["level"], record["conversation"]), []).append(record)
    for turns in by_conversation.values():
        first, second = sorted(turns, key=lambda r: r["turn"])
        assert second["input_tokens"] > first["input_tokens"] + first["output_tokens"], "turn 2 carries turn 1"
        assert first["input_tokens"] >= 128 + 20 - 8, "the shared prefix comes in front of the prompt"
        assert 4 <= first["output_tokens"] <= 8
    assert json.dumps(records)


def test_without_a_sweep_the_profile_keeps_its_single_level_and_adds_percentiles(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    profiles = {"interactive": {"maxTokens": 8, "runs": 3}}
    m = PROFILE_RUNNERS["interactive"](context(llama_server, profiles, tmp_path)).metrics
    assert m["runs"] == 3
    assert [level["label"] for level in m["levels"]] == ["concurrency 1"]
    assert "saturation" not in m
    assert m["sustainable"]["swept"] is False
    assert m["traffic"]["scenario"] == "D(320,8)"
    assert 300 <= m["traffic"]["input_tokens"]["mean"] <= 340, "the prompt is built to 320 tokens"
    for key in REPORT_KEYS[:-1]:
        assert isinstance(m[key], float), key
    assert "goodput_rps" not in m
