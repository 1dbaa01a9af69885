"""The Helm chart on the real control plane: lint, server-side dry-run, install, and its operator reconciling a matrix.

`helm template` output (rendered by the helm hack/helm/build.sh builds) is applied with kubectl server-side apply,
so the real API server validates every object against its schemas and the chart's CRDs. The operator Deployment
is pointed at the `local-exec` node, where the kubelet stand-in runs its pod as a local `kubeinfer operator run`
(the stand-in stands in for the container runtime: the image is not pulled, docs/kubelet-standin.md). The operator
then runs under the chart's own ServiceAccount and ClusterRole, and its runner Jobs under the chart's runner
ServiceAccount, so a rule missing from the chart fails this test. The gateway and model server land on kwok's
simulated CPU nodes: they are validated and scheduled, not executed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.helm.chart import lint, template
from hack.kubelet_standin import StandIn
from kubeinfer.settings import Settings
from testbed.controlplane import Cluster
from testbed.namespace_env import apply, data_volume, model_cache_volume
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(1500)

NAMESPACE = "kubeinfer-chart-test"
RELEASE = "kubeinfer-chart"
LOCAL_POOL = {"kubeinfer.dev/pool": "local"}
LOCAL_TOLERATION = {"key": "kubeinfer.dev/pool", "operator": "Equal", "value": "local", "effect": "NoSchedule"}

#: The cheapest matrix that still runs every step of a cell: one model, one quantization, one short profile.
MATRIX: dict[str, Any] = {
    "apiVersion": "kubeinfer.dev/v1alpha1",
    "kind": "BenchmarkMatrix",
    "metadata": {"name": "chart"},
    "spec": {
        "models": [{"name": "smollm2-135m", "size": "135M", "files": {"Q4_1": "pypi:smollm2-135m"}}],
        # One thread, so the server's CPU request (= threads) fits next to the operator's on a 2-CPU local-exec.
        "engine": {"ctxSize": 1024, "threads": 1},
        "limits": {"maxLoadTimeSeconds": 120},
        "profiles": {
            "interactive": {"maxTokens": 16, "runs": 1, "maxVariancePercent": 10000},
            "longContext": {"enabled": False},
            "batch": {"enabled": False},
            "quality": {"enabled": False},
            "stress": {"enabled": False},
        },
    },
}


def chart_values(models_root: Path) -> dict[str, Any]:
    """The operator on local-exec with the cpu pool aliased to it; the model cache bound to the local cache."""
    return {
        "pools": {"aliases": {"cpu": "local"}},
        "operator": {"pollSeconds": 0.5, "nodeSelector": LOCAL_POOL, "tolerations": [LOCAL_TOLERATION]},
        "modelCache": {"storageClassName": "", "volumeName": f"model-cache-{NAMESPACE}"},
        "batchData": {"storageClassName": "", "volumeName": f"kubeinfer-data-{NAMESPACE}"},
        "gateway": {"apiKeys": {"keys": {"sk-chart-test": "chart-test"}}},
    }


def diagnose(cluster: Cluster, standin: StandIn) -> str:
    """Pods, Jobs and the logs of the pods the stand-in ran in the namespace, for a failure message."""
    parts = [cluster.kubectl("get", "pods,jobs", "-n", NAMESPACE, "-o", "wide", check=False).stdout]
    for pod in cluster.get_json("pods", "-n", NAMESPACE)["items"]:
        worker = standin.pod(NAMESPACE, pod["metadata"]["name"])
        if worker is not None:
            parts.append(f"--- {pod['metadata']['name']} ---\n{worker.logs(lines=60)}")
    return "\n".join(parts)


def server_side_apply(cluster: Cluster, docs: list[dict[str, Any]], *extra: str) -> str:
    proc = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=kubeinfer-chart-test",
        "--force-conflicts",
        *extra,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def rendered(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values(settings.models_root)))
    return template(values, release=RELEASE, namespace=NAMESPACE, include_crds=True)


@pytest.fixture(scope="module")
def installed(
    kube_cluster: Cluster,
    local_node: object,
    settings: Settings,
    smollm2_gguf: Path,
    rendered: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[dict[str, Any]]]:
    """The rendered chart applied for real; removed afterwards, except the CRDs other tests share."""
    kube_cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    (pv,) = [o for o in model_cache_volume(settings.models_root, NAMESPACE) if o["kind"] == "PersistentVolume"]
    data = tmp_path_factory.mktemp("chart-data")
    (data_pv,) = [o for o in data_volume(data, NAMESPACE) if o["kind"] == "PersistentVolume"]
    apply(kube_cluster, [pv, data_pv])
    yield rendered
    kube_cluster.kubectl("delete", "benchmarkmatrix", "--all", "-n", NAMESPACE, "--wait=true", check=False)
    kube_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    # The PV goes once the namespace's claim on it has gone (pv-protection), so nothing waits for it here.
    cluster_scoped = [o for o in rendered if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for obj in [*cluster_scoped, pv]:
        kube_cluster.kubectl(
            "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False
        )


def test_chart_lints_cleanly() -> None:
    assert "0 chart(s) failed" in lint()


def test_chart_installs_and_its_operator_reconciles_a_matrix_to_completed(
    kube_cluster: Cluster, local_node: StandIn, installed: list[dict[str, Any]]
) -> None:
    kinds = {o["kind"] for o in installed}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role", "NetworkPolicy", "Secret"} <= kinds

    dry = server_side_apply(kube_cluster, installed, "--dry-run=server")
    assert "serverside-applied (server dry run)" in dry
    assert kube_cluster.get_json("deployments", "-n", NAMESPACE)["items"] == [], "dry run created objects"

    server_side_apply(kube_cluster, installed)
    for crd in (o["metadata"]["name"] for o in installed if o["kind"] == "CustomResourceDefinition"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")

    operator_selector = "app.kubernetes.io/instance=kubeinfer-chart,app.kubernetes.io/component=operator"

    def operator_pod_ready() -> bool:
        pods = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", operator_selector)["items"]
        return any(
            p["spec"].get("nodeName") == "local-exec"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            for p in pods
        )

    wait_for(operator_pod_ready, timeout=180, what="the chart's operator pod Ready on local-exec")

    kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(MATRIX))
    deadline = time.monotonic() + 900
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = kube_cluster.get_json("benchmarkmatrix", "chart", "-n", NAMESPACE).get("status") or {}
        if status.get("phase") in ("Completed", "Failed"):
            break
        (pod,) = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", operator_selector)["items"]
        assert pod["status"].get("phase") == "Running", json.dumps(pod["status"])[:2000]
        time.sleep(1)
    assert status.get("phase") == "Completed", f"{json.dumps(status)[:3000]}\n{diagnose(kube_cluster, local_node)}"
    assert status["cellsDone"] == status["cellsTotal"] == 1
    (cell,) = status["cells"]
    assert "interactive" in cell.get("profiles", {}), f"{json.dumps(cell)[:3000]}\n{diagnose(kube_cluster, local_node)}"
    assert cell["profiles"]["interactive"]["metrics"]["tokens_per_second"] > 0

    runner_sa = next(o for o in installed if o["kind"] == "Role")["metadata"]["name"]
    python_image = next(
        o for o in installed if o["kind"] == "Deployment" and o["metadata"]["name"] == "kubeinfer-chart-operator"
    )["spec"]["template"]["spec"]["containers"][0]["image"]
    jobs = kube_cluster.get_json("jobs", "-n", NAMESPACE, "-l", "kubeinfer.dev/matrix=chart")["items"]
    assert {j["metadata"]["labels"]["kubeinfer.dev/component"] for j in jobs} >= {"prepare", "measure"}
    for job in jobs:
        pod_spec = job["spec"]["template"]["spec"]
        assert pod_spec["serviceAccountName"] == runner_sa
        assert pod_spec["containers"][0]["image"] == python_image
        assert job["status"].get("succeeded") == 1, job["metadata"]["name"]
    events = kube_cluster.get_json("events", "-n", NAMESPACE)["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "chart"}
    assert {"Running", "CellFinished", "Completed"} <= reasons
