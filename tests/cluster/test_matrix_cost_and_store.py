"""Cost and large reports on the kind cluster: node prices, the Priced condition, reports in the store.

The operator runs as a process of this machine (tests/cluster/conftest.py), with its data directory in a
temporary folder and its ConfigMap limit lowered to 1000 bytes, so a one-cell matrix's report goes to the
store. The cell's server runs on the real kind node, whose price annotation and label the tests set and remove.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.bench.cost import PRICE_KEY
from testbed.kind import KindCluster
from testbed.namespace_env import NamespaceEnv, namespace_env
from testbed.operator_process import OperatorProcess
from tests.conftest import E2E_MATRIX

pytestmark = pytest.mark.timeout(1800)

NAMESPACE = "kubeinfer-cost-test"


@pytest.fixture(scope="module")
def cost_namespace(
    kube_cluster: KindCluster, cluster_models_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NamespaceEnv]:
    with namespace_env(
        kube_cluster, NAMESPACE, cluster_models_root, tmp_path_factory.mktemp("cost"), operator=False
    ) as env:
        yield env


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def operator(cost_namespace: NamespaceEnv, data_dir: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    env = {
        "KUBEINFER_GATEWAY__DATA_DIR": str(data_dir),
        "KUBEINFER_OPERATOR__REPORT_CONFIG_MAP_MAX_BYTES": "1000",
        "KUBEINFER_OPERATOR__REPORT_RETRY_SECONDS": "5",
    }
    proc = cost_namespace.operator_process(tmp_path / "operator.log", env).start()
    yield proc
    proc.stop()


@pytest.fixture
def node(kube_cluster: KindCluster) -> Iterator[str]:
    """The real node, its price annotation and label removed afterwards."""
    name = kube_cluster.node_name
    yield name
    kube_cluster.kubectl("annotate", "node", name, f"{PRICE_KEY}-", check=False)
    kube_cluster.kubectl("label", "node", name, f"{PRICE_KEY}-", check=False)


def one_cell(name: str) -> str:
    data = yaml.safe_load(E2E_MATRIX.read_text())
    data["metadata"]["name"] = name
    data["spec"]["models"][0]["files"] = {"Q4_1": "pypi:smollm2-135m"}
    data["spec"]["engine"]["threads"] = 1
    for profile in ("longContext", "batch", "quality", "stress"):
        data["spec"]["profiles"][profile] = {"enabled": False}
    return yaml.safe_dump(data)


def completed(cluster: KindCluster, name: str, operator: OperatorProcess, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert operator.running, operator.log_tail()
        status = cluster.get_json("benchmarkmatrix", name, "-n", NAMESPACE).get("status") or {}
        if status.get("phase") in ("Completed", "Failed"):
            return status
        time.sleep(2)
    raise AssertionError(f"matrix {name} not finished in {timeout}s:\n{operator.log_tail()}")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == kind)


def test_node_label_price_gives_cost_and_a_large_report_goes_to_the_store(
    kube_cluster: KindCluster, operator: OperatorProcess, node: str, data_dir: Path, tmp_path: Path
) -> None:
    kube_cluster.kubectl("label", "node", node, f"{PRICE_KEY}=0.3", "--overwrite")
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=one_cell("priced"))
    status = completed(kube_cluster, "priced", operator)
    assert status["phase"] == "Completed", status.get("conditions")
    (cell,) = status["cells"]
    assert (cell["pricePerHour"], cell["currency"]) == (0.3, "USD")
    rate = cell["maxSustainableOutputTokensPerSecond"]
    assert cell["costPerMillionOutputTokens"] == pytest.approx(0.3 / (rate * 3600) * 1e6, rel=1e-5)
    assert cell["loadSeconds"] > 0
    assert cell["coldLoadSeconds"] > 0  # timed by the server pod's supervisor
    pointer = f"store:reports/{NAMESPACE}/priced/report.json"
    assert status["report"] == pointer
    assert condition(status, "ReportStored")["message"] == pointer
    stored = json.loads((data_dir / "reports" / NAMESPACE / "priced" / "report.json").read_text())
    assert stored["results"][0]["cost_per_million_output_tokens"] == cell["costPerMillionOutputTokens"]
    missing = kube_cluster.kubectl("get", "configmap", "priced-report", "-n", NAMESPACE, check=False)
    assert missing.returncode != 0

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kubeinfer.cli.main", "bench", "report", "priced", "-n", NAMESPACE]
    cmd += ["--kubeconfig", str(kube_cluster.kubeconfig), "--out-dir", str(out)]
    env = {**os.environ, "KUBEINFER_GATEWAY__DATA_DIR": str(data_dir), "COLUMNS": "200"}
    fetched = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert f"from {pointer}" in fetched.stdout
    assert json.loads((out / "report.json").read_text())["results"] == stored["results"]

    elsewhere = {**env, "KUBEINFER_GATEWAY__DATA_DIR": str(tmp_path / "empty")}
    lost = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=elsewhere)
    assert lost.returncode == 1
    assert f"its report cannot be read: {pointer}: no file" in lost.stderr


def test_malformed_node_price_and_an_unwritable_store_are_conditions_and_the_store_is_retried(
    kube_cluster: KindCluster, operator: OperatorProcess, node: str, data_dir: Path
) -> None:
    """The data directory is a file at first: the report cannot be stored, the matrix stays Running with
    ReportStored=False; once the path is a directory the operator's next try (5 s later here, 60 s by default)
    completes it."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.write_text("not a directory")
    kube_cluster.kubectl("annotate", "node", node, f"{PRICE_KEY}=cheap", "--overwrite")
    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=one_cell("badprice"))
    deadline = time.monotonic() + 900
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert operator.running, operator.log_tail()
        status = kube_cluster.get_json("benchmarkmatrix", "badprice", "-n", NAMESPACE).get("status") or {}
        if any(c["type"] == "ReportStored" for c in status.get("conditions") or []):
            break
        time.sleep(2)
    stored = condition(status, "ReportStored")
    assert (stored["status"], stored["reason"]) == ("False", "StoreUnavailable")
    assert f"cannot write the report to the data directory {data_dir}" in stored["message"]
    assert status["phase"] == "Running"
    (cell,) = status["cells"]
    assert "costPerMillionOutputTokens" not in cell
    priced = condition(status, "Priced")
    assert (priced["status"], priced["reason"]) == ("False", "InvalidPrice")
    assert f"node {node} annotation {PRICE_KEY} is 'cheap'" in priced["message"]

    data_dir.unlink()
    data_dir.mkdir()
    status = completed(kube_cluster, "badprice", operator, timeout=300)
    assert status["phase"] == "Completed", status.get("conditions")
    assert status["report"] == f"store:reports/{NAMESPACE}/badprice/report.json"
    assert condition(status, "ReportStored")["status"] == "True"
    assert (data_dir / "reports" / NAMESPACE / "badprice" / "report.json").is_file()
