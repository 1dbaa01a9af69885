"""The operations CLI's pure parts: pod states, heartbeats, batch summaries, and its errors without a target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kubeinfer.cli.app import app
from kubeinfer.cli.ops_target import ago, size
from kubeinfer.cluster.batchjobs import summary_of
from kubeinfer.cluster.workers import _config_map_written, pod_state
from kubeinfer.engines.llamacpp_server import free_port


def pod(phase: str, conditions: list[dict[str, Any]] | None = None, **container: Any) -> dict[str, Any]:
    status = {"phase": phase, "conditions": conditions or [], "containerStatuses": [{"restartCount": 2, **container}]}
    return {"metadata": {"name": "p"}, "status": status}


READY = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]


def test_ready_running_pod_is_running_and_ready() -> None:
    assert pod_state(pod("Running", READY, state={"running": {}})) == ("Running", True, 2, None)


def test_waiting_reason_wins_over_phase() -> None:
    state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    assert pod_state(pod("Running", state=state)) == ("CrashLoopBackOff", False, 2, "back-off")


def test_running_but_not_ready_says_so() -> None:
    assert pod_state(pod("Running", state={"running": {}}))[:2] == ("NotReady", False)


def test_unschedulable_pending_pod_names_the_reason() -> None:
    cond = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]
    assert pod_state(pod("Pending", cond)) == ("Unschedulable", False, 2, "0/3 nodes")


def test_terminating_pod_is_terminating() -> None:
    body = pod("Running", READY)
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pod_state(body)[0] == "Terminating"


def test_progress_config_map_heartbeat_is_its_newest_write() -> None:
    cm = {
        "metadata": {
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"time": "2026-01-01T00:00:10Z"}, {"time": "2026-01-01T00:00:04Z"}],
        }
    }
    assert _config_map_written(cm) == _config_map_written({"metadata": {"creationTimestamp": "2026-01-01T00:00:10Z"}})


def test_batch_summary_reads_counts_and_project() -> None:
    body = {
        "metadata": {"name": "batch_1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"project": "team", "workers": 3, "inputFileId": "file-x"},
        "status": {"status": "in_progress", "model": "m", "requestCounts": {"total": 9, "completed": 4, "failed": 1}},
    }
    row = summary_of(body)
    assert (row.id, row.project, row.status, row.model, row.completed, row.failed, row.total, row.workers) == (
        "batch_1",
        "team",
        "in_progress",
        "m",
        4,
        1,
        9,
        3,
    )


def test_new_batch_job_without_status_is_validating() -> None:
    body = {"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}}
    assert summary_of(body).status == "validating"


def test_human_figures() -> None:
    assert size(None) == "-"
    assert size(3 * 1024 * 1024) == "3.0 MiB"
    assert ago(None) == "-"


runner = CliRunner()


@pytest.mark.parametrize("args", [["workers", "list"], ["batch", "list"], ["workers", "logs", "x"]])
def test_no_target_is_a_clear_error(args: list[str]) -> None:
    result = runner.invoke(
        app, args, env={"OPENAI_BASE_URL": "", "KUBEINFER_NAMESPACE": "", "KUBECONFIG": "/nonexistent"}
    )
    assert result.exit_code == 1
    assert "no target: pass --namespace" in result.output


def test_unreachable_gateway_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(app, ["batch", "get", "batch-x", "--base-url", url])
    assert result.exit_code == 1
    assert f"cannot reach the gateway at {url}" in result.output


def test_unusable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    result = runner.invoke(app, ["workers", "list", "-n", "team", "--kubeconfig", str(missing)])
    assert result.exit_code == 1
    assert f"kubeconfig {missing} does not exist" in result.output


def test_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    result = runner.invoke(app, ["batch", "list", "-n", "team", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 1
    assert "cannot reach the Kubernetes API server" in result.output
