"""The operator on the real control plane: BenchmarkMatrix reconciled end to end through the kubelet stand-in.

The operator runs as a subprocess under a ServiceAccount bound to exactly `kubeinfer.operator.rbac`'s rules,
so a missing permission fails these tests. Model servers and runner Jobs execute for real on the
`local-exec` node through the kubelet stand-in (the one part that stands in for a kubelet and a container
runtime); the other nodes are kwok's simulated CPU and GPU pools.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.settings import Settings
from tests.conftest import E2E_MATRIX
from tests.integration.cluster import Cluster
from tests.integration.operator_env import (
    OPERATOR_SA,
    prepare_namespace,
    service_account_kubeconfig,
    start_operator,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]

NAMESPACE = "kubeinfer-operator-test"


@pytest.fixture(scope="module")
def operator_kubeconfig(
    kube_cluster: Cluster,
    local_node: object,
    settings: Settings,
    smollm2_gguf: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    prepare_namespace(kube_cluster, NAMESPACE, settings.models_root)
    return service_account_kubeconfig(
        kube_cluster, NAMESPACE, OPERATOR_SA, tmp_path_factory.mktemp("operator") / "kubeconfig"
    )


@pytest.fixture
def operator(operator_kubeconfig: Path, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The running operator(s); a test may replace the first with a restarted one."""
    procs = [start_operator(operator_kubeconfig, NAMESPACE, tmp_path / "operator.log")]
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def matrix_manifest(name: str, **spec_changes: Any) -> str:
    data = yaml.safe_load(E2E_MATRIX.read_text())
    data["metadata"]["name"] = name
    data["spec"].update(spec_changes)
    return yaml.safe_dump(data)


def get_matrix(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get_json("benchmarkmatrix", name, "-n", NAMESPACE)  # type: ignore[no-any-return]


def wait_matrix(cluster: Cluster, name: str, done: Any, timeout: float, operator: list[Any]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert operator[-1].poll() is None, "the operator exited"
        body = get_matrix(cluster, name)
        if done(body.get("status") or {}):
            return body
        time.sleep(1)
    raise AssertionError(
        f"matrix {name} not done in {timeout}s: {json.dumps(get_matrix(cluster, name).get('status'))[:2000]}"
    )


def statuses(results: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    return {f"{r['model']}/{r['quantization']}": (r["status"], r.get("rule")) for r in results}


def test_quickstart_matrix_completes_with_the_same_results_as_a_local_run(
    kube_cluster: Cluster, operator: list[subprocess.Popen[bytes]], local_matrix_run: Path
) -> None:
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("e2e"))
    body = wait_matrix(kube_cluster, "e2e", lambda s: s.get("phase") in ("Completed", "Failed"), 1800, operator)
    status = body["status"]
    assert status["phase"] == "Completed", status.get("conditions")
    assert status["cellsDone"] == status["cellsTotal"] == 3
    cells = status["cells"]
    local = json.loads((local_matrix_run / "report.json").read_text())
    in_cluster = {f"{c['model']}/{c['quantization']}": (c["status"], c.get("rule")) for c in cells}
    reasons = {f"{c['model']}/{c['quantization']}": c.get("reason") for c in cells}
    assert in_cluster == statuses(local["results"]), reasons
    for cell in cells:
        assert cell["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0
    report = kube_cluster.get_json("configmap", "e2e-report", "-n", NAMESPACE)
    assert json.loads(report["data"]["report.json"])["best"] == status["best"]
    printed = kube_cluster.kubectl("get", "bm", "e2e", "-n", NAMESPACE).stdout
    assert "Completed" in printed
    assert status["best"] in printed
    reasons = {
        e["reason"]
        for e in kube_cluster.get_json("events", "-n", NAMESPACE)["items"]
        if e["involvedObject"]["name"] == "e2e"
    }
    assert {"Running", "CellStarted", "CellFinished", "Completed"} <= reasons


def test_operator_killed_mid_matrix_resumes_and_runs_each_cell_once(
    kube_cluster: Cluster, operator: list[subprocess.Popen[bytes]], operator_kubeconfig: Path, tmp_path: Path
) -> None:
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("restart"))
    wait_matrix(kube_cluster, "restart", lambda s: s.get("cellsDone", 0) >= 1, 1200, operator)
    operator[0].send_signal(signal.SIGKILL)
    operator[0].wait(timeout=30)
    operator.append(start_operator(operator_kubeconfig, NAMESPACE, tmp_path / "operator-2.log"))
    body = wait_matrix(kube_cluster, "restart", lambda s: s.get("phase") == "Completed", 1800, operator)
    assert body["status"]["cellsDone"] == 3
    jobs = kube_cluster.get_json("jobs", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=restart")["items"]
    measure = [j for j in jobs if j["metadata"]["labels"]["kubeinfer.dev/component"] == "measure"]
    assert len(measure) == 3
    for job in measure:
        pods = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", f"job-name={job['metadata']['name']}")["items"]
        assert job["status"].get("succeeded") == 1
        assert len(pods) == 1, f"{job['metadata']['name']} ran {len(pods)} times"


def test_cell_above_the_pool_memory_is_skipped_by_preflight(
    kube_cluster: Cluster, operator: list[subprocess.Popen[bytes]]
) -> None:
    tiny = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "tiny-0",
            "labels": {"kubeinfer.dev/pool": "tiny", "type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "status": {
            "allocatable": {"cpu": "2", "memory": "64Mi", "pods": "10"},
            "capacity": {"cpu": "2", "memory": "64Mi", "pods": "10"},
        },
    }
    kube_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(tiny))
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("tiny", placement={"pool": "tiny"}))
    body = wait_matrix(kube_cluster, "tiny", lambda s: s.get("phase") == "Completed", 900, operator)
    cells = body["status"]["cells"]
    assert {c["status"] for c in cells} == {"skipped"}
    assert {c["rule"] for c in cells} == {"preflight_memory"}
    assert "exceeds the memory limit of 0.06 GB" in cells[0]["reason"]


def test_gpu_cells_bind_to_the_gpu_pool_and_deleting_the_matrix_removes_its_children(
    kube_cluster: Cluster, operator: list[subprocess.Popen[bytes]]
) -> None:
    """The GPU pool is simulated by kwok: the real scheduler binds the server there; it never serves."""
    kube_cluster.kubectl(
        "apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("gpu", placement={"pool": "gpu", "gpus": 1})
    )
    selector = "kubeinfer.dev/matrix=gpu,kubeinfer.dev/component=server"
    deadline = time.monotonic() + 600
    bound: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not bound:
        pods = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", selector)["items"]
        bound = [p for p in pods if p["spec"].get("nodeName")]
        time.sleep(0.5)
    assert bound, "no server pod was bound"
    pod = bound[0]
    assert pod["spec"]["nodeName"].startswith("gpu-")
    assert pod["spec"]["containers"][0]["image"].endswith("llama-server-cuda:0.3.36")
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    kube_cluster.kubectl("delete", "benchmarkmatrix", "gpu", "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = kube_cluster.get_json("pods,jobs", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=gpu")["items"]
        if not left:
            break
        time.sleep(0.5)
    assert not left, [o["metadata"]["name"] for o in left]
