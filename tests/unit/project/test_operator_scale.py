"""The cheap parts of the operator scale benchmark (perf/operator_scale.py); the full run is `make bench`'s.

The simulated runner must write exactly what the operator's executor reads back, for Jobs built by the
operator's own builder, and the counting proxy must relay requests unchanged while counting each one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubeinfer.bench.outcome import judge_cell
from kubeinfer.bench.preflight import plan_server
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.operator.builders.benchmark_matrix import build_runner_job
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellStatus, ProfileResult
from kubeinfer.resources.names import result_name
from kubeinfer.settings import OperatorSettings, Settings
from perf.apiproxy import COUNTS_PATH, Tally, classify, make_app
from perf.operator_scale import matrix_manifest, pool_sizes
from perf.scale_timeline import max_overlap, percentiles
from perf.sim_runner import (
    RUNNER_POOL,
    measure_result,
    parse_runner_command,
    runner_node,
    runner_result,
    succeeded_status,
)

CELL = "smollm2-135m/Q4_1"


def _matrix(gpu: bool = False) -> tuple[dict[str, Any], BenchmarkMatrix]:
    body = matrix_manifest("scale-0001", 3, gpu=gpu)
    body["metadata"] |= {"namespace": "kubeinfer-scale", "uid": "0b1f6a52-0000-4000-8000-000000000001"}
    return body, BenchmarkMatrix.model_validate(body)


def _runner_container(step: str, args: list[str]) -> tuple[str, dict[str, Any]]:
    body, matrix = _matrix()
    settings = OperatorSettings(runner_pool=RUNNER_POOL)
    job = build_runner_job(body, matrix, CELL, step, args, settings)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"kubeinfer.dev/pool": RUNNER_POOL}
    return job["metadata"]["name"], job["spec"]["template"]["spec"]["containers"][0]


def test_bench_matrices_are_valid_and_mix_cpu_and_gpu_pools() -> None:
    cpu, gpu = matrix_manifest("a", 2, gpu=False), matrix_manifest("b", 3, gpu=True)
    assert len(cpu["spec"]["models"][0]["files"]) == 2
    assert cpu["spec"]["placement"] == {"pool": "cpu"}
    assert gpu["spec"]["placement"] == {"pool": "gpu", "gpus": 1}
    assert BenchmarkMatrix.model_validate(gpu).spec.profiles.enabled() == ["interactive"]
    assert pool_sizes(1000) == (750, 250)


def test_simulated_prepare_writes_what_the_executor_reads_for_the_operators_own_job(
    smollm2_gguf: Path, settings: Settings
) -> None:
    job_name, container = _runner_container("prepare", [])
    name, result = runner_result(container, settings.models_root)
    assert name == result_name(job_name)
    _, matrix = _matrix()
    plan = plan_server(smollm2_gguf, matrix.spec)
    assert result == {
        "model_path": str(smollm2_gguf.relative_to(settings.models_root)),
        "size_bytes": smollm2_gguf.stat().st_size,
        "estimated_bytes": plan.estimated_bytes,
        "ctx_size": plan.ctx_size,
        "ctx_per_slot": plan.ctx_per_slot,
    }


def test_simulated_prepare_of_a_model_missing_from_the_cache_is_an_error_result(tmp_path: Path) -> None:
    _, container = _runner_container("prepare", [])
    _, result = runner_result(container, tmp_path)
    assert set(result) == {"error"}
    assert "smollm2-135m:Q4_1" in result["error"]


def test_simulated_measure_result_is_rated_and_judged_passed_like_a_real_one() -> None:
    args = ["--server", "http://10.0.0.7:8080", "--profiles", "interactive", "--ctx-per-slot", "2048"]
    args += ["--memory-url", "http://10.0.0.7:8081/memory"]
    job_name, container = _runner_container("measure", args)
    name, result = runner_result(container, Path("/nonexistent"))
    assert name == result_name(job_name)
    assert result["memory"] is None
    assert result["memory_error"] is None
    _, matrix = _matrix()
    rated = {
        profile: rate_profile(profile, ProfileResult.model_validate(data), matrix.spec.profiles)
        for profile, data in result["profiles"].items()
    }
    assert list(rated) == ["interactive"]
    assert rated["interactive"].rating == "excellent"
    assert judge_cell(rated) == (CellStatus.passed, None, None)


def test_simulated_measure_marks_profiles_it_cannot_produce_as_skipped() -> None:
    result = measure_result("smollm2-135m/Q8_0", ["interactive", "batch"])
    assert result["profiles"]["interactive"]["metrics"]["tokens_per_second"] == pytest.approx(100.2)
    assert result["profiles"]["batch"]["status"] == "skipped"


def test_runner_command_parsing_rejects_what_is_not_a_runner() -> None:
    assert parse_runner_command(["kubeinfer", "step", "measure", "--cell", CELL, "--result", "r"]) == (
        "measure",
        {"cell": CELL, "result": "r"},
    )
    with pytest.raises(ValueError, match="not a runner command"):
        parse_runner_command(["llama-server", "--port", "8080"])
    with pytest.raises(ValueError, match="--result missing"):
        parse_runner_command(["kubeinfer", "step", "prepare", "--cell", CELL])


def test_runner_nodes_are_left_to_the_simulation_and_pods_finish_with_exit_code_zero() -> None:
    node = runner_node("runner-0")
    assert "kwok.x-k8s.io/node" not in node["metadata"]["annotations"]
    assert node["metadata"]["labels"]["kubeinfer.dev/pool"] == RUNNER_POOL
    status = succeeded_status({"spec": {"containers": [{"name": "runner", "image": "runner:1"}]}})
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/apis/batch/v1/namespaces/ns/jobs/j1/status", {}, ("get", "batch/jobs/status")),
        ("GET", "/api/v1/nodes", {"labelSelector": "a=b"}, ("list", "nodes")),
        ("GET", "/apis/kubeinfer.dev/v1alpha1/namespaces/ns/benchmarkmatrices", {"watch": "true"}, None),
        ("POST", "/api/v1/namespaces/ns/events", {}, ("create", "events")),
        ("PATCH", "/apis/kubeinfer.dev/v1alpha1/namespaces/ns/benchmarkmatrices/m/status", {}, None),
        ("DELETE", "/api/v1/namespaces/ns/pods/p", {}, ("delete", "pods")),
        ("GET", "/apis", {}, ("get", "discovery")),
        ("GET", "/api/v1/namespaces", {}, ("list", "namespaces")),
    ],
)
def test_requests_are_classified_by_verb_and_resource(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str] | None
) -> None:
    verb, resource = classify(method, path, query)
    if expected is not None:
        assert (verb, resource) == expected
    elif method == "GET":
        assert (verb, resource) == ("watch", "kubeinfer.dev/benchmarkmatrices")
    else:
        assert (verb, resource) == ("patch", "kubeinfer.dev/benchmarkmatrices/status")


async def _through_proxy() -> tuple[list[dict[str, Any]], dict[str, Any], list[bytes]]:
    """An upstream that echoes what it received, behind the proxy; returns echoes, counts and a streamed body."""

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            stream = web.StreamResponse()
            await stream.prepare(request)
            for i in range(3):
                await stream.write(json.dumps({"type": "ADDED", "n": i}).encode() + b"\n")
            await stream.write_eof()
            return stream
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "body": (await request.read()).decode(),
                "content_type": request.headers.get("Content-Type"),
                "authorization": request.headers.get("Authorization"),
            },
            status=404 if request.path.endswith("/missing") else 200,
        )

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", echo)
    async with TestServer(upstream_app) as upstream:
        tally = Tally()
        proxy_app = make_app(str(upstream.make_url("")).rstrip("/"), None, tally)
        async with TestClient(TestServer(proxy_app)) as client:
            auth = {"Authorization": "Bearer t0ken"}
            echoes = []
            for method, path, body in [
                ("GET", "/api/v1/namespaces/ns/configmaps/missing", None),
                ("POST", "/apis/batch/v1/namespaces/ns/jobs", b'{"kind": "Job"}'),
                ("PATCH", "/api/v1/namespaces/ns/pods/p/status", b'{"status": {}}'),
            ]:
                response = await client.request(
                    method, path, data=body, headers=auth, skip_auto_headers=["Content-Type"]
                )
                echoes.append(await response.json())
            response = await client.get("/api/v1/namespaces/ns/pods?watch=true", headers=auth)
            lines = [line async for line in response.content]
            counts = await (await client.get(COUNTS_PATH)).json()
    return echoes, counts, lines


def test_proxy_relays_requests_unchanged_and_counts_each_one() -> None:
    echoes, counts, lines = asyncio.run(_through_proxy())
    assert [e["method"] for e in echoes] == ["GET", "POST", "PATCH"]
    assert echoes[1]["body"] == '{"kind": "Job"}'
    assert all(e["authorization"] == "Bearer t0ken" for e in echoes)
    assert echoes[1]["content_type"] is None, "a body sent without a type must reach the apiserver without one"
    assert len(lines) == 3
    assert counts["total"] == 4
    assert counts["by_call"] == {
        "create batch/jobs": 1,
        "get configmaps": 1,
        "patch pods/status": 1,
        "watch pods": 1,
    }
    assert counts["non_2xx"] == {"get configmaps 404": 1}


def test_latency_percentiles_and_overlap() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"n": 100, "p50": 50.0, "p95": 95.0, "max": 100.0}
    assert percentiles([]) == {"n": 0, "p50": None, "p95": None, "max": None}
    assert max_overlap([(0, 10), (1, 5), (3, 11), (10.5, 12)]) == 3
