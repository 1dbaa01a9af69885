"""The README's cluster path on the kind cluster: a BenchmarkMatrix applied with kubectl into the release namespace,
Completed by the chart's operator, every cell's pods real containers with their cold and warm loads timed in the
server's container, `kubeinfer bench report` reading it and the raw per-request records the measure Jobs kept in
ConfigMaps.

The matrix is examples/quickstart.yaml cut to two SmolLM2 cells (the bundled Q4_1 and a Q4_K_M that the prepare Job
derives with llama-quantize in its container) and two short profiles, so the tier stays within minutes; the whole
quickstart on kind is a `make bench` figure (docs/testing.md). Its thresholds cannot be missed, so the statuses
are what the code decides, not what the machine's speed decides.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.bench.load.records import read_records
from testbed.kind import NAMESPACE, REPO_ROOT, KindCluster
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(3600)

QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"


def kind_matrix() -> dict[str, Any]:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["metadata"]["name"] = "quickstart"
    spec = data["spec"]
    spec["models"] = [{**spec["models"][0], "files": {"Q4_1": "pypi:smollm2-135m", "Q4_K_M": "quantize:Q4_1"}}]
    spec["engine"] = {"ctxSize": 2048, "parallel": 1, "threads": 1}
    spec["limits"] = {"maxLoadTimeSeconds": 300}
    spec["profiles"] = {
        "interactive": {
            "maxTokens": 16,
            "runs": 1,
            "minTokensPerSecond": 0.001,
            "maxTimeToFirstTokenSeconds": 100000,
            "maxVariancePercent": 10000,
        },
        "batch": {
            "documents": 4,
            "maxTokens": 8,
            "maxVariancePercent": 10000,
            "maxDegradationPercent": 10000,
            "maxMemoryDriftPercent": 10000,
        },
        "longContext": {"enabled": False},
        "quality": {"enabled": False},
        "stress": {"enabled": False},
    }
    return data


def matrix(cluster: KindCluster) -> dict[str, Any]:
    return cluster.get_json("benchmarkmatrix", "quickstart", "-n", NAMESPACE)  # type: ignore[no-any-return]


def test_a_matrix_applied_with_kubectl_completes_in_containers_and_reports(
    kind_cluster: KindCluster, tmp_path: Path
) -> None:
    manifest = kind_matrix()
    kind_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(manifest))
    first = wait_for(lambda: (matrix(kind_cluster).get("status") or {}).get("phase"), timeout=60, what="a phase")
    assert first in {"Pending", "Running"}
    pods_seen: dict[str, dict[str, Any]] = {}

    def completed() -> dict[str, Any] | None:
        for pod in kind_cluster.get_json("pods", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=quickstart")["items"]:
            pods_seen[pod["metadata"]["name"]] = pod
        body = matrix(kind_cluster)
        phase = (body.get("status") or {}).get("phase")
        assert phase != "Failed", json.dumps(body.get("status"))[:2000]
        return body if phase == "Completed" else None

    body = wait_for(completed, timeout=3000, interval=5, what="quickstart Completed")
    status = body["status"]
    expected = {f"{m['name']}/{q}" for m in manifest["spec"]["models"] for q in m["files"]}
    cells = {f"{c['model']}/{c['quantization']}": c for c in status["cells"]}
    assert set(cells) == expected
    for cell in cells.values():
        assert cell["status"] == "passed", cell
        assert cell.get("peakMemoryGb"), cell
        assert cell.get("coldLoadSeconds"), cell
        assert cell.get("loadSeconds"), cell

    containers = [cs for pod in pods_seen.values() for cs in pod["status"].get("containerStatuses") or []]
    assert containers, "no cell pod seen"
    assert all(cs["containerID"].startswith("containerd://") for cs in containers if cs.get("containerID"))
    assert any(cs.get("containerID") for cs in containers)

    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "report", "quickstart", "-n", NAMESPACE]
    cmd += ["--kubeconfig", str(kind_cluster.kubeconfig), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert {f"{r['model']}/{r['quantization']}": r["status"] for r in report["results"]} == {
        k: c["status"] for k, c in cells.items()
    }
    assert report["best"] == status.get("best")
    assert f"request records: {out / 'requests'}" in proc.stdout, proc.stdout
    for result in report["results"]:
        for profile in ("interactive", "batch"):
            path = out / "requests" / f"{result['model']}_{result['quantization']}_{profile}.jsonl"
            records = read_records(path)
            assert len(records) == result["profiles"][profile]["metrics"]["traffic"]["requests"], path
            assert all(r["profile"] == profile and r["error"] is None and r["ttft_seconds"] for r in records)
