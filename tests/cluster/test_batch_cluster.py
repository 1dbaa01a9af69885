"""BatchJobs on the kind cluster: the gateway in cluster mode, the operator, Indexed worker Jobs, merge.

The `openai` client talks to a gateway process of this machine that creates BatchJob resources; the operator
(also a process here, under exactly `kubeinfer.operator.rbac`'s rules) runs validate, worker and merge Jobs whose
pods run as containers on the kind node, and the workers send every request to the two llama-server replicas of
a ModelInstall, also containers. The shared store is a hostPath PersistentVolume bound to the `kubeinfer-data`
claim: a folder of this machine mounted into the node at the same path, which is also the gateway's data folder.
The operator serves /metrics on a port of its own here: the batch metrics of the BatchJobs it runs.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai.types import Batch
from prometheus_client.parser import text_string_to_metric_families

from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.settings import Settings
from testbed.batch_env import (
    INSTALL,
    MODEL,
    NAMESPACE,
    TERMINAL,
    Env,
    assert_exactly_once,
    batch_env,
    install_ready,
    lines_of,
    requests_file,
    submit,
    wait_final,
    worker_pods,
)
from testbed.gateway_process import KEY
from testbed.kind import KindCluster
from testbed.wait import wait_for
from tests.cluster.test_prometheus import (
    DASHBOARDS,
    Prometheus,
    Target,
    panel_expressions,
    prometheus_binaries,
    resolve_variables,
    substitute,
)

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def operator_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def env(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    batch_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    operator_metrics_port: int,
) -> Iterator[Env]:
    workdir = tmp_path_factory.mktemp("batch-cluster")
    metrics = {"KUBEINFER_OPERATOR__METRICS_PORT": str(operator_metrics_port)}
    with batch_env(kube_cluster, cluster_models_root, workdir, batch_data_dir, operator_env=metrics) as value:
        yield value


def operator_samples(port: int, batch_id: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The operator's /metrics series of one BatchJob: sample name -> (labels without `batchjob`) -> value."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("batchjob", None) == f"{NAMESPACE}/{batch_id}":
                found.setdefault(sample.name, {})[tuple(sorted(labels.items()))] = sample.value
    return found


def request_counts(port: int, batch_id: str) -> dict[str, float]:
    """kubeinfer_batch_requests_total of a finished BatchJob by status, once the operator exports it as final."""

    def final() -> dict[str, float] | None:
        samples = operator_samples(port, batch_id)
        running = samples.get("kubeinfer_batch_running", {}).get(())
        requests = samples.get("kubeinfer_batch_requests_total", {})
        return {dict(k)["status"]: v for k, v in requests.items()} if running == 0 and requests else None

    counts: dict[str, float] = wait_for(final, timeout=60, interval=1, what=f"final metrics of {batch_id}")
    return counts


def batch_status(env: Env, batch_id: str) -> dict[str, Any]:
    status: dict[str, Any] = env.cluster.get_json("batchjob", batch_id, "-n", NAMESPACE).get("status") or {}
    return status


def predicted_tokens(endpoint: str) -> float:
    text = httpx.get(f"{endpoint}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("llamacpp:tokens_predicted_total"):
            return float(line.split()[-1])
    raise AssertionError(f"no llamacpp:tokens_predicted_total in {endpoint}/metrics")


#: The ModelInstall's server pods (its install Job's pod carries the model-install label too).
SERVERS = f"kubeinfer.dev/model-install={INSTALL},kubeinfer.dev/component=server"

#: Enough for both workers and both replicas to take a share; 10,000 run in `make bench` (perf/cluster_batch_load.py).
EXACTLY_ONCE_REQUESTS = 400


def test_requests_complete_exactly_once_across_two_workers_and_two_replicas(env: Env, tmp_path: Path) -> None:
    count = EXACTLY_ONCE_REQUESTS
    before = {e: predicted_tokens(e) for e in env.endpoints}
    path = requests_file(tmp_path / "in.jsonl", count)
    expected = [f"req-{i}" for i in range(count)]
    batch = submit(env, path)
    assert batch.status == "validating"
    assert batch.id.startswith("batch-")
    seen_workers: set[str] = set()

    def watch() -> Batch | None:
        for pod in worker_pods(env, batch.id):
            seen_workers.add(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        current = env.client().batches.retrieve(batch.id)
        return current if current.status in TERMINAL else None

    done: Batch = wait_for(watch, timeout=1200, interval=1, what=f"the {count}-request batch")
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (count, count)
    assert seen_workers == {"0", "1"}
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    assert len(output) == count
    assert errors == []
    assert_exactly_once(output, errors, expected)
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert done.usage is not None
    assert done.usage.output_tokens == sum(x["response"]["body"]["usage"]["completion_tokens"] for x in output)
    after = {e: predicted_tokens(e) for e in env.endpoints}
    assert all(after[e] > before[e] for e in env.endpoints), (before, after)  # both replicas answered
    listed = env.client().batches.list(limit=1)
    assert listed.data[0].id == batch.id


def test_batch_survives_killed_worker_server_operator_and_gateway(env: Env, tmp_path: Path) -> None:
    """Kills at random moments while the batch runs; still exactly one line per custom_id.

    A few hundred requests of 8 tokens each: long enough that the kills, which wait for the batch's own
    progress, land while it runs (the last at 45-60% of it).
    """
    rng = random.Random()  # noqa: S311
    count = 400
    path = requests_file(tmp_path / "in.jsonl", count, prefix="fault", max_tokens=8)
    expected = [f"fault-{i}" for i in range(count)]
    batch = submit(env, path)
    client = env.client()

    def progressed(share: float) -> bool:
        current = client.batches.retrieve(batch.id)
        counts = current.request_counts
        return current.status in TERMINAL or (counts is not None and counts.completed >= share * count)

    wait_for(lambda: progressed(rng.uniform(0.05, 0.2)), timeout=600, interval=0.5, what="first progress")
    [victim, *_] = worker_pods(env, batch.id)
    env.cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", NAMESPACE, "--wait=false")

    wait_for(lambda: progressed(rng.uniform(0.25, 0.4)), timeout=600, interval=0.5, what="progress after worker kill")
    servers = env.cluster.get_json("pods", "-n", NAMESPACE, "-l", SERVERS)["items"]
    env.cluster.kubectl("delete", "pod", rng.choice(servers)["metadata"]["name"], "-n", NAMESPACE, "--wait=false")

    wait_for(lambda: progressed(rng.uniform(0.45, 0.6)), timeout=600, interval=0.5, what="progress after server kill")
    env.operator.kill()
    env.gateway.kill()
    time.sleep(rng.uniform(0, 3))  # a random moment without operator, not a wait for a condition
    env.operator.start()
    env.gateway.start()

    done = wait_final(env, batch.id, timeout=1500)
    assert done.status == "completed", done
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    assert len(output) + len(errors) == count
    assert_exactly_once(output, errors, expected)
    assert all(line["error"]["code"] == "engine_unavailable" for line in errors)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    # The metrics count each request once too: a worker replaced mid-shard and an operator restarted mid-batch.
    port = int(env.operator.env["KUBEINFER_OPERATOR__METRICS_PORT"])
    assert request_counts(port, batch.id) == {"completed": len(output), "failed": len(errors), "expired": 0}
    e2e = operator_samples(port, batch.id)["vllm:e2e_request_latency_seconds_count"]
    assert e2e == {(("engine", "llamacpp"), ("model_name", MODEL)): len(output)}
    wait_for(lambda: install_ready(env.cluster), timeout=300, interval=1, what="the killed replica back")
    env.endpoints[:] = install_ready(env.cluster)["status"]["serving"]["endpoints"]  # type: ignore[index]


def test_unknown_model_fails_the_batch_with_model_not_found(env: Env, tmp_path: Path) -> None:
    batch = submit(env, requests_file(tmp_path / "in.jsonl", 3, model="no-such-model"))
    done = wait_final(env, batch.id, timeout=300)
    assert done.status == "failed"
    assert done.errors is not None
    assert done.errors.data
    assert done.errors.data[0].code == "model_not_found"
    assert "no-such-model" in (done.errors.data[0].message or "")


def test_malformed_line_fails_validation_naming_the_line(env: Env, tmp_path: Path) -> None:
    path = requests_file(tmp_path / "in.jsonl", 4)
    with path.open("a") as handle:
        handle.write('{"custom_id": "broken", "method": "POST", "url": \n')
    done = wait_final(env, submit(env, path).id, timeout=300)
    assert done.status == "failed"
    assert done.errors is not None
    assert done.errors.data
    [error] = done.errors.data
    assert (error.code, error.line) == ("invalid_json_line", 5)


def test_request_the_engine_rejects_lands_in_the_error_file_with_its_reason(env: Env, tmp_path: Path) -> None:
    path = requests_file(tmp_path / "in.jsonl", 4)
    body = {"model": MODEL, "messages": "not a list", "max_tokens": 1}
    bad = {"custom_id": "rejected", "method": "POST", "url": "/v1/chat/completions", "body": body}
    with path.open("a") as handle:
        handle.write(json.dumps(bad) + "\n")
    done = wait_final(env, submit(env, path).id, timeout=600)
    assert done.status == "completed", done
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["rejected"]
    assert errors[0]["response"]["status_code"] == 400
    assert "messages" in errors[0]["response"]["body"]["error"]["message"]
    assert_exactly_once(output, errors, [*(f"req-{i}" for i in range(4)), "rejected"])
    with pytest.raises(openai.BadRequestError, match="cannot be cancelled"):
        env.client().batches.cancel(done.id)


def test_missing_input_file(env: Env) -> None:
    """Through the gateway an unknown file is a 404; a BatchJob created directly fails with file_not_found."""
    with pytest.raises(openai.NotFoundError):
        env.client().batches.create(
            input_file_id="file-doesnotexist", endpoint="/v1/chat/completions", completion_window="24h"
        )
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": "batch-missing-input", "namespace": NAMESPACE},
        "spec": {"inputFileId": "file-gone", "project": "recovery"},
    }
    env.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
    done = wait_final(env, "batch-missing-input", timeout=300)
    assert done.status == "failed"
    assert done.errors is not None
    assert done.errors.data
    assert done.errors.data[0].code == "file_not_found"


def test_cancel_stops_the_workers_and_publishes_what_was_done(env: Env, tmp_path: Path) -> None:
    count = 4000
    path = requests_file(tmp_path / "in.jsonl", count, prefix="cancel")
    batch = submit(env, path)
    client = env.client()

    def some_done() -> bool:
        counts = client.batches.retrieve(batch.id).request_counts
        return counts is not None and counts.completed > 50

    wait_for(some_done, timeout=600, interval=0.5, what="some requests done")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = wait_final(env, batch.id, timeout=600)
    assert done.status == "cancelled"
    assert not [p for p in worker_pods(env, batch.id) if p["status"].get("phase") in ("Pending", "Running")]
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    assert 50 < len(output) < count
    assert done.request_counts is not None
    assert done.request_counts.completed == len(output)
    seen = Counter(line["custom_id"] for line in output + errors)
    assert max(seen.values()) == 1


def signal_servers(env: Env, signal_name: str) -> list[str]:
    """Send SIGSTOP or SIGCONT to the llama-server of every replica, from inside its container (`kubectl exec`
    as the container's own user); returns the pods."""
    pods = [p["metadata"]["name"] for p in env.cluster.get_json("pods", "-n", NAMESPACE, "-l", SERVERS)["items"]]
    for pod in pods:
        env.cluster.kubectl(
            "exec", "-n", NAMESPACE, pod, "-c", "server", "--", "pkill", f"-{signal_name}", "-x", "llama-server"
        )
    return pods


def progressing(env: Env, batch_id: str) -> dict[str, Any] | None:
    conditions = batch_status(env, batch_id).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Progressing"), None)


def events(env: Env, batch_id: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={batch_id},reason={reason}"
    items: list[dict[str, Any]] = env.cluster.get_json("events", "-n", NAMESPACE, "--field-selector", selector)["items"]
    return items


def test_a_stalled_batch_is_flagged_then_expires_with_every_line_accounted_for(env: Env, tmp_path: Path) -> None:
    """Both replicas frozen with SIGSTOP: Progressing=False and a NoProgress Event after the operator's stall
    time (10 s here); then the completion window closes (the test moves `expiresAt` into the past, as 24 h
    would) and the batch expires with what was done in the output and the rest as `batch_expired`.
    """
    count = 600
    path = requests_file(tmp_path / "in.jsonl", count, prefix="stall")
    expected = [f"stall-{i}" for i in range(count)]
    batch = submit(env, path)
    client = env.client()

    def some_done() -> bool:
        counts = client.batches.retrieve(batch.id).request_counts
        return counts is not None and counts.completed >= 20

    wait_for(some_done, timeout=600, interval=0.5, what="some requests done")
    frozen = signal_servers(env, "STOP")
    assert len(frozen) == 2, frozen
    try:
        flagged = wait_for(
            lambda: (c := progressing(env, batch.id)) is not None and c["status"] == "False" and c,
            timeout=120,
            interval=1,
            what="Progressing=False",
        )
        assert flagged["reason"] == "NoProgress"
        assert "no request finished" in flagged["message"]
        assert wait_for(lambda: events(env, batch.id, "NoProgress"), timeout=60, interval=1, what="NoProgress Event")
        past = json.dumps({"status": {"expiresAt": int(time.time()) - 1}})
        env.cluster.kubectl(
            "patch", "batchjob", batch.id, "-n", NAMESPACE, "--subresource=status", "--type=merge", "-p", past
        )
        done = wait_final(env, batch.id, timeout=600)
    finally:
        with contextlib.suppress(Exception):
            signal_servers(env, "CONT")
    assert done.status == "expired", done
    output, errors = lines_of(env, done.output_file_id), lines_of(env, done.error_file_id)
    assert_exactly_once(output, errors, expected)
    assert len(output) >= 20
    assert {line["error"]["code"] for line in errors} <= {"batch_expired", "engine_unavailable"}
    assert any(line["error"]["code"] == "batch_expired" for line in errors)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    wait_for(lambda: install_ready(env.cluster), timeout=300, interval=1, what="both replicas answering again")
    env.endpoints[:] = install_ready(env.cluster)["status"]["serving"]["endpoints"]  # type: ignore[index]


def test_deleting_a_batch_job_removes_its_shard_logs_but_keeps_its_files(env: Env, tmp_path: Path) -> None:
    batch = submit(env, requests_file(tmp_path / "in.jsonl", 10, prefix="clean"))
    done = wait_final(env, batch.id, timeout=300)
    assert done.status == "completed"
    history = httpx.get(
        f"{env.gateway.url}/v1/jobs/history", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ).json()["jobs"]
    entry = next(job for job in history if job["batch_id"] == batch.id)  # cluster batches count in /v1/jobs
    assert (entry["status"], entry["completed_requests"]) == ("completed", 10)
    assert done.usage is not None
    assert entry["total_tokens"] == done.usage.total_tokens
    work = env.data_dir / "work" / batch.id
    assert sorted(p.name for p in work.glob("shard-*.output.jsonl")) == ["shard-0.output.jsonl", "shard-1.output.jsonl"]
    env.cluster.kubectl("delete", "batchjob", batch.id, "-n", NAMESPACE, "--timeout=180s", timeout=200)
    assert not work.exists()
    assert len(lines_of(env, done.output_file_id)) == 10  # the output is a file of the project, not of the BatchJob
    assert env.cluster.kubectl("get", "job", f"{batch.id}-clean", "-n", NAMESPACE, check=False).returncode != 0


def test_list_paginates_newest_first(env: Env, tmp_path: Path) -> None:
    client = env.client()
    ids = [submit(env, requests_file(tmp_path / f"in{i}.jsonl", 1, prefix=f"p{i}")).id for i in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more
    second = client.batches.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == ids[0]
    for batch_id in ids:
        assert wait_final(env, batch_id, timeout=300).status == "completed"


def test_project_limit_queues_batches_and_higher_priority_goes_first(env: Env, tmp_path: Path) -> None:
    """The test operator admits one running batch per project (batch_env's PROJECT_LIMIT)."""
    big = submit(env, requests_file(tmp_path / "big.jsonl", 2000, prefix="big"))
    wait_for(lambda: batch_status(env, big.id).get("workersStartedAt"), timeout=300, what="big batch running")
    low = submit(env, requests_file(tmp_path / "low.jsonl", 10, prefix="low"))
    high = submit(env, requests_file(tmp_path / "high.jsonl", 10, prefix="high"), metadata={"priority": "5"})

    def both_waiting() -> bool:
        states = [batch_status(env, b.id) for b in (low, high)]
        return all(s.get("status") == "in_progress" for s in states)

    wait_for(both_waiting, timeout=300, what="both small batches validated")
    assert batch_status(env, low.id).get("workersStartedAt") is None
    assert batch_status(env, high.id).get("workersStartedAt") is None
    assert env.cluster.get_json("batchjob", high.id, "-n", NAMESPACE)["spec"]["priority"] == 5
    env.client().batches.cancel(big.id)
    for batch in (big, low, high):
        wait_final(env, batch.id, timeout=600)
    low_status, high_status = batch_status(env, low.id), batch_status(env, high.id)
    assert (low_status["status"], high_status["status"]) == ("completed", "completed")
    assert high_status["workersStartedAt"] <= low_status["workersStartedAt"]
    assert high_status["finalizingAt"] <= low_status["workersStartedAt"]
    with pytest.raises(openai.BadRequestError, match="metadata.priority"):
        submit(env, requests_file(tmp_path / "bad.jsonl", 1, prefix="bad"), metadata={"priority": "urgent"})


def test_gateway_routes_single_inference_to_the_replicas_in_the_model_install_s_endpoint_slices(env: Env) -> None:
    """The gateway's fixed `--engine-url` is one replica; only EndpointSlice discovery also reaches the other.

    16 system prompts spread over both replicas by rendezvous hashing (all on one: odds 2 in 65,536).
    """
    wait_for(lambda: install_ready(env.cluster), timeout=300, interval=1, what="both replicas Ready")
    endpoints = install_ready(env.cluster)["status"]["serving"]["endpoints"]  # type: ignore[index]
    before = {e: predicted_tokens(e) for e in endpoints}
    client = env.client()
    for i in range(16):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": f"You are assistant number {i}; answer briefly."},
                {"role": "user", "content": "Say hello."},
            ],
            max_tokens=2,
            temperature=0,
        )
        assert reply.choices[0].finish_reason in ("length", "stop")
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to three."}], max_tokens=3, stream=True
    )
    assert any(chunk.choices and chunk.choices[0].delta.content for chunk in stream)
    after = {e: predicted_tokens(e) for e in endpoints}
    assert all(after[e] > before[e] for e in endpoints), (before, after)
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])


def test_a_batch_job_s_metrics_reach_prometheus_through_the_operator_and_fill_the_batch_dashboard(
    env: Env, operator_metrics_port: int, settings: Settings, tmp_path: Path
) -> None:
    """The worker pods are scraped by nobody; their shard states reach the operator's /metrics, where Debian's
    prometheus (the one tests/cluster/test_prometheus.py runs) scrapes them. Then every query of the batch
    dashboard returns data from the operator alone, and the serving dashboard's vLLM latency panels show the
    batch's model."""
    count = 12
    target = Target("kubeinfer-operator", f"http://127.0.0.1:{operator_metrics_port}")
    (tmp_path / "prometheus").mkdir()
    prometheus = Prometheus(prometheus_binaries(settings) / "prometheus", tmp_path / "prometheus", [target])
    try:
        wait_for(prometheus.ready, timeout=60, what="prometheus ready")
        wait_for(prometheus.targets_up, timeout=60, what="the operator scraped")
        batch = submit(env, requests_file(tmp_path / "in.jsonl", count, prefix="metrics", max_tokens=4))
        done = wait_final(env, batch.id, timeout=600)
        assert done.status == "completed", done
        assert done.usage is not None

        assert request_counts(operator_metrics_port, batch.id) == {"completed": count, "failed": 0, "expired": 0}
        samples = operator_samples(operator_metrics_port, batch.id)
        model = (("engine", "llamacpp"), ("model_name", MODEL))
        assert samples["vllm:e2e_request_latency_seconds_count"] == {model: count}
        assert samples["vllm:request_queue_time_seconds_count"] == {model: count}
        assert samples["vllm:generation_tokens_total"] == {model: done.usage.output_tokens}
        assert samples["vllm:prompt_tokens_total"] == {model: done.usage.input_tokens}
        assert samples["kubeinfer_batch_tokens_total"][(("kind", "completion"),)] == done.usage.output_tokens
        assert samples["kubeinfer_batch_progress_ratio"] == {(): 1.0}

        key = f"{NAMESPACE}/{batch.id}"
        scraped = f'sum(kubeinfer_batch_requests_total{{batchjob="{key}", status="completed"}})'

        def scraped_final() -> bool:
            result = prometheus.api("query", query=scraped)["result"]
            return bool(result) and float(result[0]["value"][1]) == count

        wait_for(scraped_final, timeout=120, interval=1, what="prometheus scraped the final counts")
        batch_dashboard = json.loads((DASHBOARDS / "batch-jobs.json").read_text())
        values = resolve_variables(batch_dashboard, prometheus)
        empty = [
            f"{title}: {query}"
            for title, expr in panel_expressions(batch_dashboard)
            if not prometheus.api("query", query=(query := substitute(expr, values)))["result"]
        ]
        assert not empty, "batch dashboard expressions without data:\n" + "\n".join(empty)
        serving = json.loads((DASHBOARDS / "serving.json").read_text())
        values = resolve_variables(serving, prometheus)
        latency = [
            (title, substitute(expr, values))
            for title, expr in panel_expressions(serving)
            if "vllm:e2e_request_latency_seconds" in expr or "vllm:request_queue_time_seconds" in expr
        ]
        assert latency
        for title, query in latency:
            # a rate() needs two scrapes of the finished batch inside its window
            def answered(query: str = query) -> list[dict[str, Any]] | None:
                return prometheus.api("query", query=query)["result"] or None

            result = wait_for(answered, timeout=120, interval=1, what=f"{title}: {query}")
            assert {r["metric"].get("model_name") for r in result} == {MODEL}, (title, query, result)
    finally:
        prometheus.stop()
