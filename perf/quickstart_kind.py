"""The README's quickstart matrix in a kind cluster against `kubeinfer bench run` on the same machine.

One run each, one after the other on the same machine: first `kubeinfer bench run examples/quickstart.yaml`
(the embedded default), then a kind cluster made as the tests make theirs (testbed/kind.py: the chart
installed, its operator watching namespace `kubeinfer`), the same file applied with kubectl and waited for
until Completed. The cluster's start-up (images, node, chart) is timed apart and not counted in the matrix's
time. Both runs' cell statuses are written next to the times: the quickstart's thresholds are real ones, so on
a busy machine a cell may pass in one run and not in the other; the times are what this compares.

Run: `python -m perf.quickstart_kind --out results/bench/quickstart-kind.json` (repository root, root user).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.kind import NAMESPACE, REPO_ROOT, KindCluster, running_test_cluster
from testbed.wait import wait_for

QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
CLUSTER = "kubeinfer-quickstart-bench"
GATEWAY_PORT = 30084


def run_local(out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "run", str(QUICKSTART), "--out-dir", str(out)]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    report = json.loads((out / "report.json").read_text())
    cells = {f"{c['model']}/{c['quantization']}": c["status"] for c in report["results"]}
    return {"seconds": round(seconds, 1), "cells": cells, "best": report.get("best")}


def run_in_cluster(cluster: KindCluster) -> dict[str, Any]:
    cluster.kubectl("delete", "bm", "quickstart", "-n", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=300)
    started = time.monotonic()
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(QUICKSTART))

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = cluster.get_json("bm", "quickstart", "-n", NAMESPACE).get("status") or {}
        return status if status.get("phase") in ("Completed", "Failed") else None

    status = wait_for(finished, timeout=3600, interval=2, what="the quickstart matrix finished")
    seconds = time.monotonic() - started
    pods = cluster.get_json("pods", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=quickstart")["items"]
    runtimes = {
        s["containerID"].split("://")[0]
        for p in pods
        for s in (p["status"].get("containerStatuses") or [])
        if s.get("containerID")
    }
    cells = {f"{c['model']}/{c['quantization']}": c["status"] for c in status.get("cells", [])}
    return {
        "seconds": round(seconds, 1),
        "phase": status["phase"],
        "cells": cells,
        "best": status.get("best"),
        "container_runtimes": sorted(runtimes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("results/bench/quickstart-kind.json"))
    args = parser.parse_args()
    result: dict[str, Any] = {"load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kubeinfer-quickstart-bench-") as tmp:
        work = Path(tmp)
        result["local"] = run_local(work / "local")
        work.chmod(0o755)  # mounted into the node; the chart's model cache is seeded by cluster.sh itself
        started = time.monotonic()
        with running_test_cluster(CLUSTER, work, work / "kind-state", GATEWAY_PORT, work / "kind.log") as cluster:
            result["cluster_start_seconds"] = round(time.monotonic() - started, 1)
            result["kind"] = run_in_cluster(cluster)
    result["kind_over_local"] = round(result["kind"]["seconds"] / result["local"]["seconds"], 2)
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
