"""The README's cluster path: `kubectl apply -n kubeinfer -f examples/quickstart.yaml` on the kind cluster, the
matrix Completed by the chart's operator, every cell's pods real containers, `kubeinfer bench report` reading it.

Cell statuses depend on how fast the machine is (the profiles' performance thresholds), so the test checks what
the code decides: every cell finished with a status and its metrics, the report matches the status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.kind import NAMESPACE, REPO_ROOT, KindCluster
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(3600)

QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"


def matrix(cluster: KindCluster) -> dict[str, Any]:
    return cluster.get_json("benchmarkmatrix", "quickstart", "-n", NAMESPACE)  # type: ignore[no-any-return]


def test_quickstart_matrix_completes_in_containers_and_reports(kind_cluster: KindCluster, tmp_path: Path) -> None:
    kind_cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(QUICKSTART))
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
    spec = yaml.safe_load(QUICKSTART.read_text())["spec"]
    expected = {f"{m['name']}/{q}" for m in spec["models"] for q in m["files"]}
    cells = {f"{c['model']}/{c['quantization']}": c for c in status["cells"]}
    assert set(cells) == expected
    for cell in cells.values():
        assert cell["status"] in {"passed", "partial", "failed", "skipped"}
    measured = [c for c in cells.values() if c["status"] != "skipped"]
    assert measured
    assert all(c.get("peakMemoryGb") for c in measured)

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
