"""Batch metrics of cluster BatchJobs: shard states from observation logs, and the operator's export of them.

What must hold (docs/metrics.md, "Batch metrics in a cluster"): each answered request counts exactly once,
however often its shard's worker was killed and replaced, and however often the operator reads the reports or
restarts; a report that cannot be read is a warning and never a crash or a dropping counter.
The Kubernetes API is replaced by a dict of ConfigMaps in the one reconciler test; tests/cluster/
test_batch_cluster.py runs the real thing on the kind node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubeinfer.batch.merge import merge_batch
from kubeinfer.batch.observation_log import ObservationLog, fold, observation_log_path
from kubeinfer.batch.pool import EndpointPool
from kubeinfer.batch.shard_worker import ShardWorker, WorkerConfig
from kubeinfer.batch.shards import BatchLayout
from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.metrics import batch_jobs, families
from kubeinfer.metrics.batch_jobs import BatchJobMetrics
from kubeinfer.metrics.observations import EngineTimings, RequestObservation, contributions
from kubeinfer.metrics.shard_state import BrokenShardMetrics, ShardMetrics
from kubeinfer.metrics.usage import TokenUsage
from kubeinfer.operator import batch_job
from kubeinfer.settings import OperatorSettings

BATCH = "batch-0000000000000000000metrics"
KEY = f"ns/{BATCH}"
MODEL = "smollm2-135m"
CHAT = "/v1/chat/completions"


def answered(seconds: float = 1.2, prompt: int = 10, completion: int = 4) -> RequestObservation:
    return RequestObservation(
        "completed", seconds, 1, MODEL, TokenUsage(prompt, completion, 6), EngineTimings(0.2, 0.6, completion), "length"
    )


def state_of(*observations: RequestObservation) -> ShardMetrics:
    state = ShardMetrics()
    for observation in observations:
        state.add_all(contributions(observation))
    return state


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def exported(metrics: BatchJobMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(metrics)
    return registry


def vllm(**labels: str) -> dict[str, str]:
    return {"model_name": MODEL, "engine": families.LLAMACPP, "batchjob": KEY, **labels}


# --- what one request adds ----------------------------------------------------------------------------------------


def test_an_answered_llama_server_request_adds_the_batch_and_vllm_series() -> None:
    state = state_of(answered())
    counters = {name: value for (name, _), value in state.counters.items()}
    assert state.counters[("kubeinfer_batch_requests_total", ("completed",))] == 1
    assert state.counters[("kubeinfer_batch_tokens_total", ("prompt",))] == 10
    assert counters["kubeinfer_batch_request_retries_total"] == 1
    assert counters["kubeinfer_batch_cached_prompt_tokens_total"] == 6
    assert state.counters[("vllm:request_success", (MODEL, "llamacpp", "length"))] == 1
    assert counters["vllm:prefix_cache_hits"] == 6
    e2e = state.histograms[("vllm:e2e_request_latency_seconds", (MODEL, "llamacpp"))]
    assert (e2e.count, e2e.total) == (1, 1.2)
    assert e2e.counts[families.REQUEST_LATENCY_BUCKETS.index(1.5)] == 1  # 1.2 s lies in the le="1.5" bucket
    queue = state.histograms[("vllm:request_queue_time_seconds", (MODEL, "llamacpp"))]
    assert queue.total == pytest.approx(0.4)  # e2e minus llama-server's prefill and decode
    tpot = state.histograms[("vllm:request_time_per_output_token_seconds", (MODEL, "llamacpp"))]
    assert tpot.total == pytest.approx(0.2)  # decode / (generated - 1)


def test_an_answer_without_llama_server_timings_adds_no_vllm_series_and_an_unsent_request_no_latency() -> None:
    other_engine = RequestObservation("completed", 0.5, 0, MODEL, TokenUsage(3, 2), None, "stop")
    state = state_of(other_engine, RequestObservation("expired"), RequestObservation("failed", 2.0, 5, MODEL))
    assert not [name for name, _ in [*state.counters, *state.histograms] if name.startswith("vllm:")]
    assert state.counters[("kubeinfer_batch_requests_total", ("expired",))] == 1
    assert state.counters[("kubeinfer_batch_request_retries_total", ())] == 5
    assert state.histograms[("kubeinfer_batch_request_duration_seconds", ())].count == 2  # not the unsent one


# --- the shard state as JSON --------------------------------------------------------------------------------------


def test_a_shard_state_survives_its_json_and_two_shards_add_up() -> None:
    one, two = state_of(answered(), answered(0.4)), state_of(answered(30.0))
    assert ShardMetrics.from_json(json.loads(json.dumps(one.as_json()))) == one
    total = ShardMetrics.from_json(one.as_json())
    total.merge(two)
    assert total == state_of(answered(), answered(0.4), answered(30.0))


def test_a_shard_state_is_the_same_whatever_order_its_answers_came_in() -> None:
    """A replacement worker rebuilds the state from the log in log order; the first added answers as they came.
    Plain float sums differ in their last bits (0.1 + 0.2 + 0.3 is not 0.3 + 0.2 + 0.1)."""
    answers = [answered(seconds) for seconds in (0.1, 0.2, 0.3, 0.070336)]
    assert state_of(*answers).as_json() == state_of(*reversed(answers)).as_json()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ([], "must be a JSON object"),
        ({"version": 2}, "version 2 is not 1"),
        ({"version": 1, "counters": {}}, "metrics.counters must be a list"),
        ({"version": 1, "counters": [["kubeinfer_nothing_total", [], 1]]}, r"counters\[0\]: 'kubeinfer_nothing_total'"),
        ({"version": 1, "counters": [["kubeinfer_batch_requests_total", [], 1]]}, r"takes 1 label values \(status\)"),
        ({"version": 1, "counters": [["kubeinfer_batch_request_retries_total", [], -1]]}, "non-negative number"),
        (
            {"version": 1, "histograms": [["kubeinfer_batch_request_duration_seconds", [], [1, 2], 0.5]]},
            "needs 14 bucket counts",
        ),
        (
            {"version": 1, "histograms": [["kubeinfer_batch_requests_total", ["completed"], [1], 0.5]]},
            "is not a histogram",
        ),
    ],
)
def test_a_broken_shard_state_is_refused_naming_the_entry(broken: Any, message: str) -> None:
    with pytest.raises(BrokenShardMetrics, match=message):
        ShardMetrics.from_json(broken)


# --- the observation log: exactly once across kills --------------------------------------------------------------


def test_a_retried_shard_counts_each_answered_request_once(tmp_path: Path) -> None:
    """A predecessor killed after c1's observation but before its result line, and in the middle of c2's line."""
    path = observation_log_path(tmp_path, 0)
    first = ObservationLog(path)
    first.append("c0", answered(1.0))
    first.append("c1", answered(2.0))  # its result line was never written: c1 is sent again
    first.close()
    with path.open("ab") as handle:
        handle.write(b'{"custom_id":"c2","status":"comp')  # torn by the kill
    replacement = ObservationLog(path)
    assert replacement.recover({"c0"}) == state_of(answered(1.0))
    assert path.read_bytes().endswith(b"\n")  # the torn line is cut, so the next line starts on its own
    replacement.append("c1", answered(3.0))
    replacement.append("c2", answered(4.0))
    replacement.close()
    rebuilt = ObservationLog(path).recover({"c0", "c1", "c2"})
    assert rebuilt == state_of(answered(1.0), answered(3.0), answered(4.0))  # c1 once, from its answered try
    assert rebuilt.counters[("kubeinfer_batch_requests_total", ("completed",))] == 3


def test_unreadable_observation_lines_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = observation_log_path(tmp_path, 0)
    log = ObservationLog(path)
    log.append("c0", answered())
    log.close()
    with path.open("a") as handle:
        handle.write("not json\n")
        handle.write('{"custom_id": "c1", "status": "maybe"}\n')
        handle.write('{"status": "completed"}\n')
    with path.open("a") as handle:
        handle.write(json.dumps({"custom_id": "c2", **answered().as_json()}) + "\n")
    with caplog.at_level(logging.WARNING):
        folded = fold([path], {"c0", "c1", "c2"})
    assert folded.skipped == 3
    assert folded.state == state_of(answered(), answered())
    assert "unreadable metric observations skipped" in caplog.text


def _input(path: Path, count: int) -> Path:
    with path.open("w") as handle:
        for i in range(count):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"Say {i}"}], "max_tokens": 1}
            handle.write(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": CHAT, "body": body}) + "\n")
    return path


def _closed_port_pool() -> EndpointPool:
    url = f"http://127.0.0.1:{free_port()}"

    async def resolve() -> list[str]:
        return [url]

    return EndpointPool(resolve)


def _run_shard(layout: BatchLayout, path: Path) -> dict[str, Any]:
    """The shard's worker after the batch's window closed: it sends nothing and reports what it has."""
    reports: list[dict[str, Any]] = []
    worker = ShardWorker(
        layout, path, CHAT, _closed_port_pool(), WorkerConfig(), lambda p: reports.append(p.as_json()), time.time() - 1
    )

    async def main() -> None:
        try:
            await worker.run(0, 1)
        finally:
            await worker.pool.aclose()

    asyncio.run(main())
    return reports[-1]


def test_a_worker_reports_its_predecessor_s_observations_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    path = _input(tmp_path / "in.jsonl", 4)
    layout = BatchLayout(tmp_path / "data", BATCH)
    output, _ = layout.logs(0)
    predecessor = ObservationLog(observation_log_path(layout.work, 0))
    predecessor.append("c1", answered(2.0))
    output.append({"custom_id": "c1", "response": {"status_code": 200, "body": {}}, "error": None})
    predecessor.append("c2", answered(9.0))  # killed before c2's result line
    predecessor.close()
    output.close()

    report = _run_shard(layout, path)
    state = ShardMetrics.from_json(report["metrics"])
    assert state.counters[("kubeinfer_batch_requests_total", ("completed",))] == 1
    assert state.counters[("kubeinfer_batch_requests_total", ("expired",))] == 3  # c0, c2, c3
    assert state.histograms[("vllm:e2e_request_latency_seconds", (MODEL, "llamacpp"))].total == 2.0
    assert (report["completed"], report["failed"], report["in_flight"]) == (1, 3, 0)
    assert _run_shard(layout, path)["metrics"] == report["metrics"]  # the Job retried a finished shard


def test_the_merge_reports_the_batch_s_final_state_with_missing_requests_and_ignores_the_log(tmp_path: Path) -> None:
    path = _input(tmp_path / "in.jsonl", 3)
    layout = BatchLayout(tmp_path / "data", BATCH)
    output, _ = layout.logs(1)
    observations = ObservationLog(observation_log_path(layout.work, 1))
    observations.append("c0", answered(2.0))
    output.append({"custom_id": "c0", "response": {"status_code": 200, "body": {}}, "error": None})
    observations.append("c1", answered(3.0))  # no result line: c1 never finished
    observations.close()
    output.close()

    merged = merge_batch(layout, path, "batch_expired")
    assert (merged.completed, merged.failed, merged.missing) == (1, 2, 2)
    final = ShardMetrics.from_json(merged.as_json()["metrics"])
    assert final.counters[("kubeinfer_batch_requests_total", ("completed",))] == 1
    assert final.counters[("kubeinfer_batch_requests_total", ("expired",))] == 2
    assert final.histograms[("vllm:e2e_request_latency_seconds", (MODEL, "llamacpp"))].total == 2.0
    assert merged.duplicates == 0  # the observation log was not read as a result log


# --- the operator's export ----------------------------------------------------------------------------------------


def test_reading_the_same_reports_again_or_after_a_restart_exports_the_same_values() -> None:
    shards = {0: state_of(answered(1.0)), 1: state_of(answered(2.0), answered(0.2))}
    metrics = BatchJobMetrics()
    registry = exported(metrics)
    for _ in range(3):  # one reconcile pass after another
        metrics.running(KEY, MODEL, shards, 2, 0.5)
    assert value(registry, "kubeinfer_batch_requests_total", status="completed", batchjob=KEY) == 3
    assert value(registry, "kubeinfer_batch_requests_total", status="failed", batchjob=KEY) == 0
    assert value(registry, "vllm:e2e_request_latency_seconds_count", **vllm()) == 3
    assert value(registry, "vllm:e2e_request_latency_seconds_bucket", **vllm(le="1.0")) == 2
    assert value(registry, "vllm:num_requests_running", **vllm()) == 2
    assert value(registry, "kubeinfer_batch_running", batchjob=KEY) == 1
    restarted = BatchJobMetrics()
    restarted.running(KEY, MODEL, shards, 2, 0.5)
    again = exported(restarted)
    for name, labels in [
        ("kubeinfer_batch_requests_total", {"status": "completed", "batchjob": KEY}),
        ("vllm:e2e_request_latency_seconds_sum", vllm()),
        ("vllm:generation_tokens_total", vllm()),
    ]:
        assert value(again, name, **labels) == value(registry, name, **labels)


def test_an_unreadable_shard_keeps_its_last_state_or_withholds_the_batch_s_counters() -> None:
    good = {0: state_of(answered()), 1: state_of(answered())}
    metrics = BatchJobMetrics()
    registry = exported(metrics)
    metrics.running(KEY, MODEL, good, 0, 0.5)
    metrics.running(KEY, MODEL, {0: None, 1: state_of(answered(), answered())}, 0, 0.75)
    assert value(registry, "kubeinfer_batch_requests_total", status="completed", batchjob=KEY) == 3
    restarted = BatchJobMetrics()  # never saw shard 0 readable: a sum without it would drop, i.e. read as a reset
    restarted.running(KEY, MODEL, {0: None, 1: state_of(answered())}, 1, 0.5)
    fresh = exported(restarted)
    assert value(fresh, "kubeinfer_batch_requests_total", status="completed", batchjob=KEY) is None
    assert value(fresh, "kubeinfer_batch_progress_ratio", batchjob=KEY) == 0.5


def test_a_finished_batch_exports_the_merge_s_state_then_goes_after_the_linger() -> None:
    clock = [100.0]
    metrics = BatchJobMetrics(clock=lambda: clock[0], linger_seconds=60)
    registry = exported(metrics)
    metrics.running(KEY, MODEL, {0: state_of(answered())}, 1, 0.5)
    final = state_of(answered(), answered(), RequestObservation("expired"))
    metrics.finished(KEY, "expired", final, 1.0)
    assert value(registry, "kubeinfer_batch_requests_total", status="expired", batchjob=KEY) == 1
    assert value(registry, "kubeinfer_batch_running", batchjob=KEY) == 0
    assert value(registry, "kubeinfer_batch_requests_in_flight", batchjob=KEY) == 0
    assert value(registry, "kubeinfer_batches_finished_total", status="expired") == 1
    clock[0] += 61
    assert value(registry, "kubeinfer_batch_requests_total", status="expired", batchjob=KEY) is None
    assert value(registry, "kubeinfer_batches_finished_total", status="expired") == 1  # a count of this process


class _Reconciler(batch_job.BatchJobReconciler):
    """The real reconciler, its API calls answered from `config_maps` and its status patches recorded."""

    def __init__(self, config_maps: dict[str, dict[str, Any] | None]) -> None:
        body = {"metadata": {"name": BATCH, "namespace": "ns", "generation": 1}, "spec": {}}
        super().__init__(None, body, OperatorSettings(), lambda *_: None)
        self.config_maps = config_maps
        self.patches: list[dict[str, Any]] = []

    def patch_status(self, status: dict[str, Any]) -> None:
        self.patches.append(status)


def test_the_reconciler_warns_once_about_a_shard_report_without_usable_metrics(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = BatchJobMetrics()
    monkeypatch.setattr(batch_job, "BATCH_JOBS", metrics)
    good = {"completed": 1, "failed": 0, "in_flight": 1, "metrics": state_of(answered()).as_json()}
    maps: dict[str, dict[str, Any] | None] = {
        f"{BATCH}-shard-0": good,
        f"{BATCH}-shard-1": {"completed": 2, "failed": 0, "metrics": {"version": 1, "counters": "x"}},
        f"{BATCH}-shard-2": {"completed": 1, "failed": 1},  # an older worker image: no metrics at all
    }
    monkeypatch.setattr(batch_job, "read_json_config_map", lambda _core, _ns, name: maps.get(name))
    reconciler = _Reconciler(maps)
    body = {"spec": {"workers": 3}}
    status = {"model": MODEL, "requestCounts": {"total": 10}}
    with caplog.at_level(logging.WARNING, logger="kubeinfer.operator.batch_job"):
        for _ in range(3):
            reconciler._mirror_progress(body, status)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any(f"{BATCH}-shard-1" in w and "metrics.counters must be a list" in w for w in warnings)
    assert any(f"{BATCH}-shard-2" in w and "it has no metrics" in w for w in warnings)
    assert reconciler.patches[0]["requestCounts"] == {"total": 10, "completed": 4, "failed": 1}
    registry = exported(metrics)
    assert value(registry, "kubeinfer_batch_progress_ratio", batchjob=KEY) == 0.5
    assert value(registry, "kubeinfer_batch_requests_total", status="completed", batchjob=KEY) is None  # withheld


def test_the_operator_process_can_serve_the_batch_families_it_never_records_itself() -> None:
    """The operator's doors import no worker-side registry objects, so registering the collector cannot clash."""
    code = (
        "import sys\n"
        "import kubeinfer.cli.operator, kubeinfer.operator.batch_job, kubeinfer.operator.benchmark_matrix\n"
        "import kubeinfer.operator.model_install, kubeinfer.operator.startup\n"
        "from kubeinfer.metrics.batch_jobs import register\n"
        "register(); register()\n"
        "print(sorted(m for m in ('kubeinfer.metrics.batch', 'kubeinfer.metrics.vllm') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_process_that_records_batch_requests_itself_cannot_also_register_the_collector() -> None:
    import kubeinfer.metrics.batch  # noqa: F401  (registers the worker-side families in the default registry)

    with pytest.raises(ValueError, match="Duplicated timeseries"):
        batch_jobs.register()


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_operator_exports_the_gateway_s_families_with_a_batchjob_label_added() -> None:
    """Same names, types, help and bucket bounds as the embedded gateway registers: one dashboard covers both."""
    import kubeinfer.metrics.batch as worker_side
    import kubeinfer.metrics.vllm as worker_vllm

    worker_side.record(answered())
    worker_vllm.running(MODEL)  # the gauge's series, as a batch request at the engine makes it
    gateway = _families(generate_latest(REGISTRY).decode())
    metrics = BatchJobMetrics()
    metrics.running(KEY, MODEL, {0: state_of(answered(), RequestObservation("failed", 1.0, 2, MODEL))}, 1, 0.5)
    operator = _families(generate_latest(exported(metrics)).decode())
    expected = {"kubeinfer_batch_requests", "vllm:e2e_request_latency_seconds", "vllm:num_requests_running"}
    assert set(operator) >= expected
    for name, family in operator.items():
        mine = gateway[name]
        assert (family.type, family.documentation) == (mine.type, mine.documentation), name
        for sample in family.samples:
            if name != "kubeinfer_batches_finished":
                assert sample.labels.pop("batchjob") == KEY, (name, sample)
            twin = [s for s in mine.samples if s.name == sample.name and set(s.labels) == set(sample.labels)]
            assert twin, f"{sample.name}{sample.labels}: no series of that shape on the gateway"
        bounds = {s.labels.get("le") for s in family.samples} - {None}
        assert bounds <= {s.labels.get("le") for s in mine.samples}, name


def test_a_gateway_counts_retries_as_they_are_sent_so_a_finished_request_does_not_add_them_again() -> None:
    import kubeinfer.metrics.batch as worker_side

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    retries = sample("kubeinfer_batch_request_retries_total")
    tokens = sample("kubeinfer_batch_tokens_total", kind="prompt")
    worker_side.record(answered(prompt=7))  # one retry, which the worker's _send counted when it was sent
    assert sample("kubeinfer_batch_request_retries_total") == retries
    assert sample("kubeinfer_batch_tokens_total", kind="prompt") == tokens + 7


def test_a_report_taken_for_another_thread_does_not_change_while_the_shard_counts_on() -> None:
    from kubeinfer.batch.shard_worker import ShardProgress

    progress = ShardProgress(0, 10, metrics=state_of(answered()))
    snapshot = progress.snapshot()
    before = json.dumps(snapshot.as_json())
    progress.metrics.add_all(contributions(answered(50.0)))
    progress.metrics.add_all(contributions(RequestObservation("failed", 1.0, 0, MODEL)))
    assert json.dumps(snapshot.as_json()) == before
