"""`kubeinfer bench report`: errors that need no cluster, and the status checks before a report is read.

The paths against the real control plane (found, unknown, unfinished, missing ConfigMap) are in
tests/cluster/test_operator.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubeinfer.cli import app
from kubeinfer.cluster.matrices import ReportUnavailable, report_config_map

runner = CliRunner()
WHERE = "BenchmarkMatrix q in namespace ns"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    code, output = run("bench", "report", "q", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 1
    assert f"kubeconfig {tmp_path / 'nope'} does not exist" in output


def test_unreachable_cluster_names_the_server(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}],
                "current-context": "c",
            }
        )
    )
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
    ],
)
def test_a_matrix_without_a_finished_report_is_refused(status: dict[str, object], message: str) -> None:
    with pytest.raises(ReportUnavailable) as raised:
        report_config_map(WHERE, status)
    assert str(raised.value).startswith(f"{WHERE} {message}")


def test_a_completed_matrix_names_itsreport_config_map() -> None:
    assert report_config_map(WHERE, {"phase": "Completed", "report": "configmap/q-report"}) == "q-report"
