"""`helm test` and `helm uninstall` of the release `make kind-up` installed; last of the kind tier by its name.

`helm test` runs the chart's test Pod (files/smoke.py: a chat completion and a one-line batch through the gateway
Service). `helm uninstall` runs the pre-delete hook (files/pre_delete.py), which deletes the release's
ModelInstalls and BatchJobs while the operator still runs, so their finalizers are released and nothing is left
behind; the CRDs stay, as helm leaves them. The other cluster tests use their own namespaces, not the release.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from testbed.kind import HELM_VERSION, NAMESPACE, KindCluster, cache_dir
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(1200)

RELEASE = "kubeinfer"


def helm(cluster: KindCluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get("HELM_BIN") or str(cache_dir() / "helm" / HELM_VERSION / "bin" / "helm")
    command = [binary, *args, "--kubeconfig", str(cluster.kubeconfig), "--namespace", NAMESPACE]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_helm_test_gets_a_chat_and_a_batch_through_the_gateway_service(kind_cluster: KindCluster) -> None:
    result = helm(kind_cluster, "test", RELEASE, "--logs", "--timeout", "8m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout or "Phase: Succeeded" in " ".join(result.stdout.split())
    batches = kind_cluster.get_json("batchjobs", "-n", NAMESPACE)["items"]
    smoke = [b for b in batches if (b["spec"].get("metadata") or {}).get("helm-test") == RELEASE]
    assert smoke, [b["spec"].get("metadata") for b in batches]
    assert {b["status"]["status"] for b in smoke} == {"completed"}


def release_owned(obj: dict[str, Any]) -> bool:
    """The chart's ModelInstall and the batches `helm test` made: what the pre-delete hook deletes."""
    if obj["kind"] == "ModelInstall":
        return bool(obj["metadata"]["name"] == f"{RELEASE}-model-server")
    return (obj["spec"].get("metadata") or {}).get("helm-test") == RELEASE


def test_helm_uninstall_releases_every_finalizer_and_leaves_no_pod(kind_cluster: KindCluster) -> None:
    """As docs/helm.md says, a user deletes their own resources first; the hook deletes the release's."""
    ours = kind_cluster.get_json("modelinstalls,batchjobs", "-n", NAMESPACE)["items"]
    for obj in [o for o in ours if not release_owned(o)]:
        kind_cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", NAMESPACE, timeout=300)
    kind_cluster.kubectl("delete", "benchmarkmatrices", "--all", "-n", NAMESPACE, timeout=300)
    owned = kind_cluster.get_json("modelinstalls,batchjobs", "-n", NAMESPACE)["items"]
    assert {o["kind"] for o in owned} == {"ModelInstall", "BatchJob"}, owned
    assert all(o["metadata"].get("finalizers") for o in owned)

    result = helm(kind_cluster, "uninstall", RELEASE, "--wait", "--timeout", "5m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'release "{RELEASE}" uninstalled' in result.stdout

    assert kind_cluster.get_json("modelinstalls,batchjobs", "-n", NAMESPACE)["items"] == []
    wait_for(
        lambda: not kind_cluster.get_json("pods", "-n", NAMESPACE)["items"],
        timeout=180,
        what=f"every pod of namespace {NAMESPACE} gone",
    )
    crds = {c["metadata"]["name"] for c in kind_cluster.get_json("crds")["items"]}
    assert {"benchmarkmatrices.kubeinfer.dev", "modelinstalls.kubeinfer.dev", "batchjobs.kubeinfer.dev"} <= crds
