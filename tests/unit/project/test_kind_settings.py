"""`hack/kind/cluster.sh` checks its settings before it installs, builds or creates anything.

These run the real script with `check` and `up`; with a bad setting `up` must stop at once, naming the
variable, and leave no state folder behind (a typo should cost seconds, not an image build).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "kind" / "cluster.sh"


def run_script(command: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {k: v for k, v in os.environ.items() if not k.startswith("KIND_")}
    settings |= {"KIND_STATE_DIR": str(tmp_path / "state"), "KIND_CLUSTER": "kubeinfer-settings-test", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=settings, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_settings_the_cluster_tier_uses_pass(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    done = run_script(
        "check",
        tmp_path,
        KIND_SHARED_DIRS=str(shared),
        KIND_SIM_CPU_NODES="2",
        KIND_SIM_GPU_NODES="2",
        KIND_NODE_POOL="local",
        KIND_HOST_ROUTE="1",
        KIND_POD_SUBNET="10.245.0.0/16",
        KIND_HELM_TEST="0",
    )
    assert done.returncode == 0, done.stderr
    assert "settings ok" in done.stderr


def test_workers_with_host_routes_pass_when_the_subnet_holds_a_24_per_node(tmp_path: Path) -> None:
    """More than one node with the offline image: each node takes a /24, the host gets a route to each."""
    done = run_script("check", tmp_path, KIND_WORKERS="3", KIND_HOST_ROUTE="1", KIND_POD_SUBNET="10.245.0.0/22")
    assert done.returncode == 0, done.stderr
    assert "settings ok" in done.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KIND_WORKERS": "two"}, "KIND_WORKERS must be a whole number, not 'two'"),
        ({"KIND_SIM_GPU_NODES": "-1"}, "KIND_SIM_GPU_NODES must be a whole number"),
        ({"KIND_SIM_CPU_NODES": "2"}, "KIND_SIM_CPU_NODES needs KIND_NODE_POOL set to another pool than cpu"),
        ({"KIND_SHARED_DIRS": "/nonexistent/kubeinfer-shared"}, "/nonexistent/kubeinfer-shared is not a folder"),
        ({"KIND_SHARED_DIRS": "relative/dir"}, "relative/dir is not an absolute path"),
        ({"KIND_POD_SUBNET": "10.245.0.0"}, "KIND_POD_SUBNET must be an IPv4 CIDR"),
        ({"KIND_WORKERS": "1", "KIND_POD_SUBNET": "10.245.0.0/24"}, "holds fewer than 2 /24 ranges, one for each node"),
        ({"KIND_WORKERS": "4", "KIND_POD_SUBNET": "10.245.0.0/22"}, "holds fewer than 5 /24 ranges, one for each node"),
        ({"KIND_HOST_ROUTE": "yes"}, "KIND_HOST_ROUTE must be 0 or 1"),
        ({"KIND_HELM_TEST": "no"}, "KIND_HELM_TEST must be 0 or 1, not 'no'"),
        ({"KIND_SKIP_HELM": "true"}, "KIND_SKIP_HELM must be 0 or 1, not 'true'"),
        ({"KIND_GATEWAY_PORT": "70000"}, "KIND_GATEWAY_PORT must be a port"),
        ({"KIND_NODE_POOL": "Local_Pool"}, "KIND_NODE_POOL must be a label value"),
    ],
)
def test_up_stops_on_a_bad_setting_before_doing_anything(tmp_path: Path, env: dict[str, str], message: str) -> None:
    done = run_script("up", tmp_path, **env)
    assert done.returncode == 1
    assert message in done.stderr
    assert "install" not in done.stderr.lower().replace(message.lower(), "")
    assert not (tmp_path / "state").exists()


def test_an_unknown_command_prints_the_usage(tmp_path: Path) -> None:
    done = run_script("upp", tmp_path)
    assert done.returncode == 1
    assert "usage:" in done.stderr
    assert "up|down|check" in done.stderr
