"""The operator on the kind cluster: BenchmarkMatrix reconciled end to end, its pods run as containers.

The operator runs as a process of this machine under a ServiceAccount bound to exactly
`kubeinfer.operator.rbac`'s rules, so a missing permission fails these tests. Model servers and runner Jobs run
as containers of the kubeinfer and llama-server images on the kind node (the tests' `cpu` pool); the GPU pool
and the `tiny` pool of the preflight test are kwok's simulated nodes, where nothing runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.kind import REPO_ROOT, KindCluster
from testbed.namespace_env import NamespaceEnv, namespace_env
from testbed.operator_process import OperatorProcess
from tests.conftest import E2E_MATRIX, matrix_verdicts

pytestmark = pytest.mark.timeout(2400)

NAMESPACE = "kubeinfer-operator-test"


@pytest.fixture(scope="module")
def operator_namespace(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NamespaceEnv]:
    """The prepared namespace; each test runs its own operator."""
    with namespace_env(
        kube_cluster, NAMESPACE, cluster_models_root, tmp_path_factory.mktemp("operator"), operator=False
    ) as env:
        yield env


@pytest.fixture
def operator(operator_namespace: NamespaceEnv, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """The running operator(s); a test may replace the first with a restarted one."""
    procs = [operator_namespace.operator_process(tmp_path / "operator.log").start()]
    yield procs
    for proc in procs:
        proc.stop()


def matrix_manifest(name: str, **spec_changes: Any) -> str:
    """tests/engine/matrix.yaml with one thread per server: a cell's CPU request is its thread count, and a kind
    node on 2 cores has about one CPU left next to its control plane (the statuses do not depend on it)."""
    data = yaml.safe_load(E2E_MATRIX.read_text())
    data["metadata"]["name"] = name
    data["spec"]["engine"]["threads"] = 1
    data["spec"].update(spec_changes)
    return yaml.safe_dump(data)


def get_matrix(cluster: KindCluster, name: str) -> dict[str, Any]:
    return cluster.get_json("benchmarkmatrix", name, "-n", NAMESPACE)  # type: ignore[no-any-return]


def wait_matrix(
    cluster: KindCluster, name: str, done: Any, timeout: float, operator: list[OperatorProcess]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert operator[-1].running, "the operator exited"
        body = get_matrix(cluster, name)
        if done(body.get("status") or {}):
            return body
        time.sleep(1)
    raise AssertionError(
        f"matrix {name} not done in {timeout}s: {json.dumps(get_matrix(cluster, name).get('status'))[:2000]}"
    )


def statuses(results: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    return {f"{r['model']}/{r['quantization']}": (r["status"], r.get("rule")) for r in results}


def bench_report(cluster: KindCluster, name: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubeinfer bench report` as a user runs it, with the cluster's admin kubeconfig."""
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "report", name, "-n", namespace]
    cmd += ["--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def check_bench_report(cluster: KindCluster, status: dict[str, Any], out: Path) -> None:
    """The files `bench report` writes carry the cells, best and memory figures of the matrix's status."""
    fetched = bench_report(cluster, "e2e", NAMESPACE, "--out-dir", str(out / "all"))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert {p.name for p in (out / "all").iterdir()} == {"report.json", "report.csv", "report.html", "requests"}
    assert {p.name for p in (out / "all" / "requests").iterdir()} == {
        f"{r['model']}_{r['quantization']}_{profile}.jsonl"
        for r in status["cells"]
        for profile in ("interactive", "batch")
        if r["status"] != "skipped"
    }
    report = json.loads((out / "all" / "report.json").read_text())
    assert statuses(report["results"]) == statuses(status["cells"])
    assert report["best"] == status["best"]
    assert report["recommendations"] == status["recommendations"]
    by_key = {f"{c['model']}/{c['quantization']}": c for c in status["cells"]}
    for cell in report["results"]:
        assert cell["peak_memory_gb"] == by_key[f"{cell['model']}/{cell['quantization']}"].get("peakMemoryGb")
    csv_rows = (out / "all" / "report.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(status["cells"])
    assert status["best"] in (out / "all" / "report.html").read_text()
    assert f"overall best: {status['best']}" in fetched.stdout
    assert f"configmap/e2e-report in namespace {NAMESPACE}" in fetched.stdout
    only_csv = bench_report(cluster, "e2e", NAMESPACE, "--out-dir", str(out / "csv"), "--format", "csv")
    assert only_csv.returncode == 0, only_csv.stderr
    assert [p.name for p in (out / "csv").iterdir()] == ["report.csv"]


def test_operator_killed_mid_matrix_resumes_each_cell_once_to_the_same_results_as_a_local_run(
    kube_cluster: KindCluster,
    operator: list[OperatorProcess],
    operator_namespace: NamespaceEnv,
    local_matrix_run: Path,
    tmp_path: Path,
) -> None:
    """The e2e matrix in containers, its operator SIGKILLed once the first cell is done and started again: every
    cell's measure Job runs exactly once, and the statuses equal those of an uninterrupted local `bench run`."""
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("e2e"))
    wait_matrix(kube_cluster, "e2e", lambda s: s.get("cellsDone", 0) >= 1, 1200, operator)
    operator[0].kill()
    operator.append(operator_namespace.operator_process(tmp_path / "operator-2.log").start())
    body = wait_matrix(kube_cluster, "e2e", lambda s: s.get("phase") in ("Completed", "Failed"), 1800, operator)
    status = body["status"]
    assert status["phase"] == "Completed", status.get("conditions")
    assert status["cellsDone"] == status["cellsTotal"] == 3
    jobs = kube_cluster.get_json("jobs", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=e2e")["items"]
    measure = [j for j in jobs if j["metadata"]["labels"]["kubeinfer.dev/component"] == "measure"]
    assert len(measure) == 3
    for job in measure:
        pods = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", f"job-name={job['metadata']['name']}")["items"]
        assert job["status"].get("succeeded") == 1
        assert len(pods) == 1, f"{job['metadata']['name']} ran {len(pods)} times"
    cells = status["cells"]
    local = json.loads((local_matrix_run / "report.json").read_text())
    reasons = {f"{c['model']}/{c['quantization']}": c.get("reason") for c in cells}
    assert matrix_verdicts(cells) == matrix_verdicts(local["results"]), reasons
    for cell in cells:
        assert cell["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0
        assert cell.get("coldLoadSeconds", 0) > 0, cell
    measured_locally = {f"{c['model']}/{c['quantization']}" for c in local["results"] if c.get("peak_memory_gb")}
    assert measured_locally, "the local run measured no memory"
    for cell in cells:
        if f"{cell['model']}/{cell['quantization']}" in measured_locally:
            assert cell.get("peakMemoryGb", 0) > cell["modelSizeGb"], cell
    report = kube_cluster.get_json("configmap", "e2e-report", "-n", NAMESPACE)
    assert json.loads(report["data"]["report.json"])["best"] == status["best"]
    check_bench_report(kube_cluster, status, tmp_path)
    printed = kube_cluster.kubectl("get", "bm", "e2e", "-n", NAMESPACE).stdout
    assert "Completed" in printed
    assert status["best"] in printed
    event_reasons = {
        e["reason"]
        for e in kube_cluster.get_json("events", "-n", NAMESPACE)["items"]
        if e["involvedObject"]["name"] == "e2e"
    }
    assert {"Running", "CellStarted", "CellFinished", "Completed"} <= event_reasons


def test_cell_above_the_pool_memory_is_skipped_by_preflight(
    kube_cluster: KindCluster, operator: list[OperatorProcess]
) -> None:
    tiny = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "tiny-0",
            "labels": {"kubeinfer.dev/pool": "tiny", "type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [{"key": "kubeinfer.dev/pool", "value": "tiny", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "2", "memory": "64Mi", "pods": "10"},
            "capacity": {"cpu": "2", "memory": "64Mi", "pods": "10"},
        },
    }
    kube_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(tiny))
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=matrix_manifest("tiny", placement={"pool": "tiny"}))
    try:
        body = wait_matrix(kube_cluster, "tiny", lambda s: s.get("phase") == "Completed", 900, operator)
    finally:
        kube_cluster.kubectl("delete", "node", "tiny-0", "--wait=false", check=False)
    cells = body["status"]["cells"]
    assert {c["status"] for c in cells} == {"skipped"}
    assert {c["rule"] for c in cells} == {"preflight_memory"}
    assert "exceeds the memory limit of 0.06 GB" in cells[0]["reason"]


def test_gpu_cells_bind_to_the_gpu_pool_and_deleting_the_matrix_removes_its_children(
    kube_cluster: KindCluster, operator: list[OperatorProcess]
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


REPORT_NAMESPACE = "kubeinfer-report-test"


@pytest.fixture(scope="module")
def report_namespace(kube_cluster: KindCluster) -> str:
    """A namespace no operator watches: matrices there keep the status a test gives them."""
    kube_cluster.kubectl("create", "namespace", REPORT_NAMESPACE, check=False)
    kube_cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/benchmarkmatrices.kubeinfer.dev", "--timeout=60s")
    return REPORT_NAMESPACE


def set_status(cluster: KindCluster, name: str, status: dict[str, Any]) -> None:
    patch = json.dumps({"status": status})
    cluster.kubectl(
        "patch", "benchmarkmatrix", name, "-n", REPORT_NAMESPACE, "--subresource=status", "--type=merge", "-p", patch
    )


def put_report(cluster: KindCluster, name: str, report: dict[str, Any] | None) -> None:
    """Create or replace ConfigMap `name` with `report` as its report.json (None: text that is not JSON)."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": REPORT_NAMESPACE},
        "data": {"report.json": "{broken" if report is None else json.dumps(report)},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(config_map))


def test_bench_report_refuses_unknown_unfinished_and_reportless_matrices(
    kube_cluster: KindCluster, report_namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    unknown = bench_report(kube_cluster, "nope", report_namespace, "--out-dir", str(out))
    assert unknown.returncode == 1
    assert f"BenchmarkMatrix nope in namespace {report_namespace} not found" in unknown.stderr

    kube_cluster.kubectl("apply", "-n", report_namespace, "-f", "-", stdin=matrix_manifest("half"))
    set_status(kube_cluster, "half", {"phase": "Running", "cellsDone": 1, "cellsTotal": 3})
    running = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(out))
    assert running.returncode == 1
    assert f"half in namespace {report_namespace} is not finished (phase Running, 1/3 cells done)" in running.stderr

    set_status(kube_cluster, "half", {"phase": "Completed", "cellsDone": 3, "report": "configmap/half-report"})
    missing = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(out))
    assert missing.returncode == 1
    assert "is Completed but its report ConfigMap half-report is missing" in missing.stderr

    put_report(kube_cluster, "half-report", None)
    broken = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(out))
    assert broken.returncode == 1
    assert "ConfigMap half-report: report.json is not JSON" in broken.stderr

    cases: list[tuple[dict[str, Any], str]] = [
        ({"metadata": {}}, "ConfigMap half-report: report.json is not a kubeinfer report (no results list)"),
        (
            {"results": [{"model": "m"}]},
            f"configmap/half-report in namespace {report_namespace}: not a kubeinfer report "
            "(CellResult quantization: Field required)",
        ),
    ]
    for report, message in cases:
        put_report(kube_cluster, "half-report", report)
        invalid = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(out))
        assert invalid.returncode == 1
        assert message in invalid.stderr
    assert not out.exists()

    skipped = {"model": "m", "quantization": "Q4_1", "model_size_b": 0.135, "status": "skipped", "reason": "why"}
    put_report(kube_cluster, "half-report", {"metadata": {"name": "half"}, "results": [skipped]})
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    unwritable = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(a_file))
    assert unwritable.returncode == 1
    assert f"cannot write the report to {a_file}" in unwritable.stderr
    written = bench_report(kube_cluster, "half", report_namespace, "--out-dir", str(out), "--format", "json")
    assert written.returncode == 0, written.stderr
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert json.loads((out / "report.json").read_text())["results"][0]["reason"] == "why"
