"""Pure builders of the operator's child objects, tested without a cluster."""

from __future__ import annotations

import json
from typing import Any

from kubeinfer.operator.builders.benchmark_matrix import build_runner_job, build_server_pod, memory_url
from kubeinfer.operator.builders.common import MEMORY_PORT
from kubeinfer.operator.rbac import OPERATOR_RULES
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix
from kubeinfer.resources.names import child_name
from kubeinfer.settings import OperatorSettings


def matrix(**spec: Any) -> tuple[dict[str, Any], BenchmarkMatrix]:
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BenchmarkMatrix",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "1234"},
        "spec": {"models": [{"name": "m", "size": "1B", "files": {"Q4_K_M": "pypi:smollm2-135m"}}], **spec},
    }
    parsed = BenchmarkMatrix.model_validate({**body, "metadata": {"name": "demo", "namespace": "ns"}})
    return body, parsed


def test_cpu_server_pod_runs_llama_server_on_the_pool_with_the_cache_read_only() -> None:
    body, parsed = matrix(engine={"threads": 4, "parallel": 2})
    pod = build_server_pod(body, parsed, "m/Q4_K_M", "m/m.Q4_K_M.gguf", 8192, 500_000_000, OperatorSettings())
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/kubeinfer/llama-server:0.3.36"
    args = container["args"]
    assert args[args.index("--model") + 1] == "/models/m/m.Q4_K_M.gguf"
    assert args[args.index("--parallel") + 1] == "2"
    assert args[args.index("--threads") + 1] == "4"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["resources"]["requests"]["memory"] == "500000000"
    assert pod["spec"]["nodeSelector"] == {"kubeinfer.dev/pool": "cpu"}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert container["volumeMounts"][0]["readOnly"] is True


def test_gpu_pool_gets_gpu_image_limit_toleration_and_full_offload() -> None:
    body, parsed = matrix(placement={"pool": "gpu", "gpus": 1})
    pod = build_server_pod(body, parsed, "m/Q4_K_M", "m/m.Q4_K_M.gguf", 4096, 1, OperatorSettings())
    container = pod["spec"]["containers"][0]
    assert container["image"].endswith("llama-server-cuda:0.3.36")
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert container["args"][container["args"].index("--n-gpu-layers") + 1] == "999"


def server_container(body: dict[str, Any], parsed: BenchmarkMatrix) -> dict[str, Any]:
    """The server container of cell m/Q4_K_M, model file m/x.gguf."""
    pod = build_server_pod(body, parsed, "m/Q4_K_M", "m/x.gguf", 4096, 1, OperatorSettings())
    return pod["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_llama_server_runs_under_the_memory_supervisor_with_its_port_exposed() -> None:
    """The supervisor's command ends with `--` so every llama-server flag in `args` goes to the child."""
    body, parsed = matrix()
    container = server_container(body, parsed)
    command = container["command"]
    assert command[:3] == ["kubeinfer", "engine", "serve"]
    assert command[command.index("--memory-port") + 1] == str(MEMORY_PORT)
    assert command[command.index("--memory-host") + 1] == "0.0.0.0"
    assert command[-2:] == ["--", "llama-server"]
    assert container["args"][:2] == ["--model", "/models/m/x.gguf"]
    assert {"name": "memory", "containerPort": MEMORY_PORT} in container["ports"]
    assert memory_url(parsed, "10.0.0.7") == f"http://10.0.0.7:{MEMORY_PORT}/memory"


def test_a_matrix_server_times_a_cold_load_of_its_own_model_on_a_port_the_probe_does_not_ask() -> None:
    body, parsed = matrix()
    container = server_container(body, parsed)
    command = container["command"]
    assert command[command.index("--cold-load") + 1] == "/models/m/x.gguf"
    assert command[command.index("--health-url") + 1] == "http://127.0.0.1:8080/health"
    cold_port = int(command[command.index("--cold-port") + 1])
    assert cold_port != container["readinessProbe"]["httpGet"]["port"]
    assert cold_port not in [port["containerPort"] for port in container["ports"]]
    assert command.index("--cold-load") < command.index("--")


def test_gpu_llama_server_is_supervised_too() -> None:
    body, parsed = matrix(placement={"pool": "gpu", "gpus": 1})
    container = server_container(body, parsed)
    assert container["command"][:3] == ["kubeinfer", "engine", "serve"]


def test_vllm_uses_the_upstream_image_without_memory_supervision() -> None:
    body, parsed = matrix(engine={"type": "vllm"}, placement={"pool": "gpu"})
    container = server_container(body, parsed)
    assert container["image"].startswith("vllm/vllm-openai")
    assert container["command"][:2] == ["vllm", "serve"]
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert memory_url(parsed, "10.0.0.7") is None


def test_pool_aliases_map_logical_pools_to_node_labels() -> None:
    body, parsed = matrix()
    pod = build_server_pod(
        body, parsed, "m/Q4_K_M", "m/x.gguf", 4096, 1, OperatorSettings(pool_aliases={"cpu": "local"})
    )
    assert pod["spec"]["nodeSelector"] == {"kubeinfer.dev/pool": "local"}


def test_runner_job_carries_the_matrix_and_writes_to_a_named_result() -> None:
    body, parsed = matrix()
    job = build_runner_job(body, parsed, "m/Q4_K_M", "measure", ["--server", "http://x"], OperatorSettings())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:3] == ["kubeinfer", "step", "measure"]
    assert container["command"][container["command"].index("--result") + 1] == "demo-m-q4-k-m-measure-result"
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["KUBEINFER_MATRIX"]["value"])["spec"]["models"][0]["name"] == "m"
    assert pod["serviceAccountName"] == "kubeinfer-runner"
    assert job["spec"]["backoffLimit"] == 2


def test_child_names_are_deterministic_and_short() -> None:
    assert child_name("demo", "m/Q4_K_M", "server") == "demo-m-q4-k-m-server"
    long = child_name("a" * 40, "some-very-long-model-name/Q4_K_M", "measure")
    assert len(long) <= 52
    assert long.endswith("-measure")
    assert long == child_name("a" * 40, "some-very-long-model-name/Q4_K_M", "measure")


def test_operator_rbac_never_grants_wildcards() -> None:
    for rule in OPERATOR_RULES:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]


def test_stress_job_runs_the_measure_step_under_its_own_name() -> None:
    body, parsed = matrix()
    job = build_runner_job(body, parsed, "m/Q4_K_M", "measure", [], OperatorSettings(), component="stress")
    assert job["metadata"]["name"] == "demo-m-q4-k-m-stress"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == ["kubeinfer", "step", "measure"]
