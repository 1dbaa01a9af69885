"""The offline node image's pod network for one or more kind nodes (`hack/kind/bridge.sh`).

These run the script's own functions in bash: which /24 each node's bridge takes, that a pod subnet too small
for the nodes is refused before anything is created, and the CNI file each node gets. That pods reach each other
across two real nodes is checked on a kind cluster (docs/kind.md, "More than one node").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parents[3] / "hack" / "kind" / "bridge.sh"
REPO_ROOT = BRIDGE.parents[2]


def bash(script: str, tmp_path: Path, *, subnet: str, workers: int) -> subprocess.CompletedProcess[str]:
    prelude = (
        f"KIND_CLUSTER=demo KIND_STATE_DIR={tmp_path} POD_SUBNET={subnet} WORKERS={workers} REPO_ROOT={REPO_ROOT}\n"
        f"source {BRIDGE}\n"
    )
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + script], capture_output=True, text=True, timeout=30, check=False
    )


def lines(script: str, tmp_path: Path, *, subnet: str, workers: int) -> list[str]:
    done = bash(script, tmp_path, subnet=subnet, workers=workers)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_one_node_takes_the_whole_pod_subnet(tmp_path: Path) -> None:
    assert lines("node_range 0", tmp_path, subnet="10.245.0.0/16", workers=0) == ["10.245.0.0/16"]


def test_each_node_takes_its_own_24_in_kinds_node_order(tmp_path: Path) -> None:
    script = "for i in 0 1 2; do echo $(node_name $i)=$(node_range $i); done"
    assert lines(script, tmp_path, subnet="10.245.0.0/16", workers=2) == [
        "demo-control-plane=10.245.0.0/24",
        "demo-worker=10.245.1.0/24",
        "demo-worker2=10.245.2.0/24",
    ]


def test_ranges_start_at_the_subnets_network_address(tmp_path: Path) -> None:
    assert lines("node_range 1", tmp_path, subnet="10.245.3.7/16", workers=1) == ["10.245.1.0/24"]


@pytest.mark.parametrize(
    ("subnet", "workers", "fits"),
    [("10.244.0.0/16", 3, True), ("10.244.0.0/23", 1, True), ("10.244.0.0/23", 2, False), ("10.244.0.0/24", 1, False)],
)
def test_a_subnet_needs_a_24_for_every_node(tmp_path: Path, subnet: str, workers: int, fits: bool) -> None:
    done = bash("bridge_fits", tmp_path, subnet=subnet, workers=workers)
    assert (done.returncode == 0) == fits, done.stderr
    if not fits:
        assert f"KIND_POD_SUBNET {subnet} holds fewer than {workers + 1} /24 ranges" in done.stderr


def cni_files(tmp_path: Path, workers: int) -> dict[str, dict[str, object]]:
    lines("write_cni_configs", tmp_path, subnet="10.245.0.0/16", workers=workers)
    return {path.stem: json.loads(path.read_text()) for path in (tmp_path / "cni").glob("*.conflist")}


def bridge_of(config: dict[str, object]) -> dict[str, object]:
    plugins = config["plugins"]
    assert isinstance(plugins, list)
    return next(p for p in plugins if p["type"] == "bridge")


def test_one_node_keeps_the_images_network_with_masquerade(tmp_path: Path) -> None:
    files = cni_files(tmp_path, workers=0)
    assert list(files) == ["demo-control-plane"]
    bridge = bridge_of(files["demo-control-plane"])
    assert bridge["ipMasq"] is True
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.245.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }


def test_every_node_gets_its_own_range_and_pods_keep_their_addresses_across_nodes(tmp_path: Path) -> None:
    files = cni_files(tmp_path, workers=2)
    ranges = {name: bridge_of(config)["ipam"]["ranges"][0][0]["subnet"] for name, config in files.items()}  # type: ignore[index]
    assert ranges == {
        "demo-control-plane": "10.245.0.0/24",
        "demo-worker": "10.245.1.0/24",
        "demo-worker2": "10.245.2.0/24",
    }
    assert {bridge_of(config)["ipMasq"] for config in files.values()} == {False}
