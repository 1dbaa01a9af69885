"""`kubeinfer bench diff cluster:NAMESPACE/NAME ...` against the real control plane: a finished matrix's report
compared with a local one, and the refusals (unknown, unfinished) with exit code 2.

The matrices live in the report namespace no operator watches, so each keeps the status the test gives it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from testbed.kind import KindCluster
from tests.cluster.test_operator import matrix_manifest, put_report, report_namespace, set_status

__all__ = ["report_namespace"]


def cell(tokens_per_second: float) -> dict[str, Any]:
    metrics = {"tokens_per_second": tokens_per_second, "ttft_seconds": 0.4, "runs": 3}
    return {
        "model": "m",
        "quantization": "Q4_1",
        "model_size_b": 0.135,
        "status": "passed",
        "profiles": {"interactive": {"status": "passed", "rating": "good", "metrics": metrics}},
    }


def bench_diff(cluster: KindCluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "diff", *args, "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_bench_diff_reads_a_finished_matrix_and_refuses_an_unfinished_one(
    kube_cluster: KindCluster, report_namespace: str, tmp_path: Path
) -> None:
    local = tmp_path / "report.json"
    local.write_text(json.dumps({"metadata": {"name": "diffed"}, "results": [cell(20.0)]}))
    source = f"cluster:{report_namespace}/diffed"

    unknown = bench_diff(kube_cluster, f"cluster:{report_namespace}/nope", str(local))
    assert unknown.returncode == 2
    assert f"BenchmarkMatrix nope in namespace {report_namespace} not found" in unknown.stderr

    kube_cluster.kubectl("apply", "-n", report_namespace, "-f", "-", stdin=matrix_manifest("diffed"))
    set_status(kube_cluster, "diffed", {"phase": "Running", "cellsDone": 0, "cellsTotal": 1})
    running = bench_diff(kube_cluster, source, str(local))
    assert running.returncode == 2
    assert "is not finished (phase Running, 0/1 cells done)" in running.stderr

    put_report(kube_cluster, "diffed-report", {"metadata": {"name": "diffed"}, "results": [cell(20.0)]})
    set_status(kube_cluster, "diffed", {"phase": "Completed", "cellsDone": 1, "report": "configmap/diffed-report"})
    same = bench_diff(kube_cluster, source, str(local))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 regressions" in same.stdout

    put_report(kube_cluster, "diffed-report", {"metadata": {"name": "diffed"}, "results": [cell(12.0)]})
    slower = bench_diff(kube_cluster, str(local), source, "--json")
    assert slower.returncode == 1, slower.stderr
    document = json.loads(slower.stdout)
    assert document["new"] == source
    assert [(c["cell"], c["metric"]) for c in document["regressions"]] == [("m/Q4_1", "tokens_per_second")]
