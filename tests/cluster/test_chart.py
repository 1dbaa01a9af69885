"""The Helm chart on the real control plane: lint, server-side dry-run, install, and its operator reconciling a matrix.

`helm template` output (rendered by the helm hack/helm/build.sh builds) is applied with kubectl server-side apply,
so the real API server validates every object against its schemas and the chart's CRDs. The operator Deployment
is pointed at the `local-exec` node, where the kubelet stand-in runs its pod as a local `kubeinfer operator run`
(the stand-in stands in for the container runtime: the image is not pulled, docs/kubelet-standin.md). The operator
then runs under the chart's own ServiceAccount and ClusterRole, and its runner Jobs under the chart's runner
ServiceAccount, so a rule missing from the chart fails this test. The gateway runs on `local-exec` too, in cluster
mode, and the chart's ModelInstall is served there by the operator: the `helm test` script (files/smoke.py), run
from this machine against the gateway pod's address, sends a chat completion and a one-line batch that the operator
runs as a BatchJob on that ModelInstall's server. The pre-delete hook's script (files/pre_delete.py) then deletes the
ModelInstall and the test's BatchJob and the operator releases their finalizers. Helm hooks are not applied by
kubectl: the test Pod and the hook Job are only validated by the server-side dry run. No Service DNS or routing here
(the stand-in has none): the gateway and the batch workers reach the server through its EndpointSlices.
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

from hack.helm.chart import CHART, lint, template
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


API_KEY = "sk-chart-test"
MODEL_INSTALL = f"{RELEASE}-model-server"


def chart_values(models_root: Path) -> dict[str, Any]:
    """Operator and gateway on local-exec with the cpu pool aliased to it; the claims bound to local folders.

    The testbed's hostPath volumes are ReadWriteMany (several kwok nodes), so the claims ask for that too.
    """
    local = {"nodeSelector": LOCAL_POOL, "tolerations": [LOCAL_TOLERATION]}
    return {
        "pools": {"aliases": {"cpu": "local"}},
        "operator": {"pollSeconds": 0.5, **local},
        "modelCache": {
            "storageClassName": "",
            "volumeName": f"model-cache-{NAMESPACE}",
            "accessModes": ["ReadWriteMany"],
        },
        "batchData": {
            "storageClassName": "",
            "volumeName": f"kubeinfer-data-{NAMESPACE}",
            "accessModes": ["ReadWriteMany"],
        },
        # Small requests and one thread, so the server fits on local-exec next to the matrix's cell server.
        "modelServer": {"ctxSize": 1024, "parallel": 2, "threads": 1, "resources": {"requests": {"cpu": "100m"}}},
        "gateway": {"apiKeys": {"keys": {API_KEY: "chart-test"}}, "cluster": {"batchWorkers": 1}, **local},
    }


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def chart_script(name: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """One of the chart's hook scripts (charts/kubeinfer/files), run here as its pod runs it: `python -c`."""
    script = (CHART / "files" / name).read_text()
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    # While the chart's operator still runs, so it releases their finalizers (the pre-delete hook's job under helm).
    for kind in ("benchmarkmatrix", "batchjob", "modelinstall"):
        kube_cluster.kubectl("delete", kind, "--all", "-n", NAMESPACE, "--wait=true", "--timeout=120s", check=False)
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
    assert {"ModelInstall", "Pod", "Job"} <= kinds  # the gateway's model, the test Pod, the pre-delete hook

    # CRDs first, as helm installs them: the chart's ModelInstall can only be validated once its CRD is served.
    crds = [o for o in installed if o["kind"] == "CustomResourceDefinition"]
    server_side_apply(kube_cluster, crds)
    for crd in (o["metadata"]["name"] for o in crds):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    objects = [o for o in installed if o["kind"] != "CustomResourceDefinition"]
    dry = server_side_apply(kube_cluster, objects, "--dry-run=server")  # the hooks too, and the CRD's CEL rules
    assert "serverside-applied (server dry run)" in dry
    assert f"modelinstall.kubeinfer.dev/{MODEL_INSTALL} serverside-applied (server dry run)" in dry
    assert kube_cluster.get_json("deployments", "-n", NAMESPACE)["items"] == [], "dry run created objects"

    server_side_apply(kube_cluster, [o for o in objects if not is_hook(o)])

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

    runner_sa = f"{RELEASE}-runner"
    assert any(o["kind"] == "Role" and o["metadata"]["name"] == runner_sa for o in installed)
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


def test_helm_test_script_gets_a_chat_and_a_batch_from_the_chart_s_model_install_and_the_hook_cleans_up(
    kube_cluster: Cluster, local_node: StandIn, installed: list[dict[str, Any]], tmp_path: Path
) -> None:
    """After the matrix test: the chart's own model served, then the `helm test` and pre-delete hook scripts."""

    def install_ready() -> bool:
        body = kube_cluster.get_json("modelinstall", MODEL_INSTALL, "-n", NAMESPACE)
        return (body.get("status") or {}).get("phase") == "Ready"

    try:
        wait_for(install_ready, timeout=600, interval=1, what=f"ModelInstall {MODEL_INSTALL} Ready")
    except AssertionError as exc:
        body = kube_cluster.get_json("modelinstall", MODEL_INSTALL, "-n", NAMESPACE)
        raise AssertionError(
            f"{exc}\n{json.dumps(body.get('status'))[:3000]}\n{diagnose(kube_cluster, local_node)}"
        ) from None
    gateway_selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=gateway"

    def gateway_ip() -> str | None:
        for pod in kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", gateway_selector)["items"]:
            conditions = pod["status"].get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return str(pod["status"]["podIP"])
        return None

    try:
        address = wait_for(gateway_ip, timeout=180, interval=1, what="the chart's gateway pod Ready on local-exec")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(kube_cluster, local_node)}") from None
    test_pod = next(o for o in installed if o["kind"] == "Pod")
    env = {e["name"]: e["value"] for e in test_pod["spec"]["containers"][0]["env"]}
    keys = tmp_path / "api-keys"
    keys.write_text(f"{API_KEY}=chart-test\n")
    smoke = chart_script(
        "smoke.py",
        {**env, "GATEWAY_URL": f"http://{address}:8080/v1", "API_KEYS_FILE": str(keys), "TIMEOUT_SECONDS": "400"},
        timeout=460,
    )
    assert smoke.returncode == 0, f"{smoke.stdout}{smoke.stderr}\n{diagnose(kube_cluster, local_node)}"
    assert smoke.stdout.splitlines()[-1] == "ok"
    batches = kube_cluster.get_json("batchjobs", "-n", NAMESPACE)["items"]
    (batch,) = [b for b in batches if (b["spec"].get("metadata") or {}).get("helm-test") == RELEASE]
    assert batch["status"]["status"] == "completed"
    assert batch["status"]["modelInstall"] == MODEL_INSTALL
    assert batch["metadata"]["finalizers"], "the operator guards its BatchJobs with a finalizer"

    hook = next(o for o in installed if o["kind"] == "Job" and is_hook(o))
    hook_env = {e["name"]: e["value"] for e in hook["spec"]["template"]["spec"]["containers"][0]["env"]}
    cleanup = chart_script("pre_delete.py", {**hook_env, "KUBECONFIG": str(kube_cluster.kubeconfig)}, timeout=300)
    assert cleanup.returncode == 0, f"{cleanup.stdout}{cleanup.stderr}"
    assert "removing its finalizers" not in cleanup.stdout, "the operator, not the hook, should release them"
    assert kube_cluster.kubectl("get", "modelinstall", MODEL_INSTALL, "-n", NAMESPACE, check=False).returncode != 0
    remaining = kube_cluster.get_json("batchjobs", "-n", NAMESPACE)["items"]
    assert batch["metadata"]["name"] not in {b["metadata"]["name"] for b in remaining}
