"""A cluster shard's metrics against the real llama-server: what its worker reports is what the operator exports.

The worker, the shard state, the merge and the operator's collector are the real ones; only the ConfigMaps
between them are left out (the shard's report goes to the collector as the operator would read it back).
tests/cluster/test_batch_cluster.py runs the same path with pods on the kind node.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kubeinfer.batch.merge import merge_batch
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_server import LlamaServer
from kubeinfer.metrics.batch_jobs import BatchJobMetrics
from kubeinfer.metrics.shard_state import ShardMetrics
from tests.engine.test_batch_shard_worker import _input, _lines, _pool, _run

pytestmark = pytest.mark.timeout(300)

BATCH = "batch-00000000000000000000mtrc"
KEY = f"ns/{BATCH}"
MODEL = "smollm2-135m"


def test_a_shard_s_reported_metrics_match_its_answers_and_a_rerun_reports_the_same(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    path = _input(tmp_path / "in.jsonl", 6)
    layout = BatchLayout(tmp_path / "data", BATCH)
    done = _run(layout, path, _pool(llama_server.base_url), index=0, count=2)
    report = json.loads(json.dumps(done.as_json()))  # as the progress ConfigMap carries it
    answers = [line["response"]["body"] for line in _lines(layout.logs(0)[0].path)]
    assert len(answers) == 3

    metrics = BatchJobMetrics()
    registry = CollectorRegistry()
    registry.register(metrics)
    metrics.running(KEY, MODEL, {0: ShardMetrics.from_json(report["metrics"])}, report["in_flight"], 0.5)
    vllm = {"model_name": MODEL, "engine": "llamacpp", "batchjob": KEY}
    assert registry.get_sample_value("vllm:e2e_request_latency_seconds_count", vllm) == 3
    generated, prompted = (sum(a["usage"][f"{kind}_tokens"] for a in answers) for kind in ("completion", "prompt"))
    assert registry.get_sample_value("vllm:generation_tokens_total", vllm) == generated
    assert registry.get_sample_value("vllm:prompt_tokens_total", vllm) == prompted
    completed = {"status": "completed", "batchjob": KEY}
    assert registry.get_sample_value("kubeinfer_batch_requests_total", completed) == 3
    prefill = registry.get_sample_value("vllm:request_prefill_time_seconds_sum", vllm)
    assert prefill == pytest.approx(sum(a["timings"]["prompt_ms"] for a in answers) / 1000)

    rerun = _run(layout, path, _pool(llama_server.base_url), index=0, count=2)  # the Job retried a finished shard
    assert rerun.as_json()["metrics"] == report["metrics"]

    merged = merge_batch(layout, path, "worker_failed")  # shard 1 never ran: its three requests are missing
    final = ShardMetrics.from_json(merged.metrics)
    metrics.finished(KEY, "completed", final, 1.0)
    assert registry.get_sample_value("kubeinfer_batch_requests_total", completed) == 3
    assert registry.get_sample_value("kubeinfer_batch_requests_total", {"status": "failed", "batchjob": KEY}) == 3
    assert registry.get_sample_value("vllm:e2e_request_latency_seconds_count", vllm) == 3
