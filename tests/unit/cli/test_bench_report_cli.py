"""`kubeinfer bench report`: errors that need no cluster, and the status checks before a report is read.

The paths against the real control plane (found, unknown, unfinished, missing ConfigMap) are in
tests/cluster/test_operator.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeinfer.cli import app
from kubeinfer.cluster.matrices import ReportUnavailable, report_pointer
from testbed.unreachable import unreachable_kubeconfig

runner = CliRunner()
WHERE = "BenchmarkMatrix q in namespace ns"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    code, output = run("bench", "report", "q", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 1
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in output


def test_unreachable_cluster_names_the_server(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    server = unreachable_kubeconfig(kubeconfig, namespace="ns")
    code, output = run("bench", "report", "q", "--kubeconfig", str(kubeconfig), "--out-dir", str(tmp_path / "out"))
    assert code == 1
    assert f"cannot reach the Kubernetes API server at {server}" in output
    assert not (tmp_path / "out").exists()


def test_broken_kubeconfig_says_so(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    code, output = run("bench", "report", "q", "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "cannot load a Kubernetes configuration" in output


def test_unknown_format_is_refused() -> None:
    code, output = run("bench", "report", "q", "--format", "pdf")
    assert code == 2
    assert "pdf" in output


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({}, "is not finished (phase Pending, 0/0 cells done)"),
        ({"phase": "Running", "cellsDone": 1, "cellsTotal": 3}, "is not finished (phase Running, 1/3 cells done)"),
        (
            {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False", "message": "bad spec"}]},
            "is not finished (phase Failed, 0/0 cells done: bad spec)",
        ),
        ({"phase": "Completed"}, "is Completed but status.report is None"),
        ({"phase": "Completed", "report": "secret/x"}, "is Completed but status.report is 'secret/x'"),
        ({"phase": "Completed", "report": "configmap/"}, "is Completed but status.report is 'configmap/'"),
    ],
)
def test_a_matrix_without_a_finished_report_is_refused(status: dict[str, object], message: str) -> None:
    with pytest.raises(ReportUnavailable) as raised:
        report_pointer(WHERE, status)
    assert str(raised.value).startswith(f"{WHERE} {message}")


@pytest.mark.parametrize(
    "pointer",
    ["configmap/q-report", "store:reports/ns/q/report.json", "s3://bucket/kubeinfer/reports/ns/q/report.json"],
)
def test_a_completed_matrix_names_where_its_report_is(pointer: str) -> None:
    assert report_pointer(WHERE, {"phase": "Completed", "report": pointer}) == pointer
