"""ModelInstall on the kind cluster: install Jobs and model servers run as containers on the kind node.

The operator runs on this machine under exactly `kubeinfer.operator.rbac`'s rules. Downloads come from a local
Hugging Face Hub (testbed/hub.py, the one stand-in: the Hub itself) that listens on this machine's address on the
nodes' container network, where the pods reach it; nothing leaves the machine. The real OOM fallback (a server
over its memory limit, killed by the kernel) is tests/cluster/kind/test_kind_oom.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI

from testbed.gateway_process import KEY, GatewayProcess
from testbed.hub import FILENAME, REPO, SHA256, Behaviour, HubServer, Repo
from testbed.kind import KindCluster
from testbed.namespace_env import GATEWAY_SA, namespace_env, service_account_kubeconfig
from testbed.wait import wait_for

pytestmark = pytest.mark.timeout(900)

NAMESPACE = "kubeinfer-install-test"


@pytest.fixture(scope="module")
def pod_hub(kube_cluster: KindCluster, smollm2_gguf: Path) -> Iterator[HubServer]:
    """The local Hub, listening on this machine's address on the nodes' network, where pods reach it."""
    repos = {REPO: Repo({FILENAME: smollm2_gguf}, sha256={FILENAME: SHA256})}
    address = kube_cluster.host_address
    with HubServer(repos, host=address, advertise=address).running() as server:
        yield server


@pytest.fixture(scope="module")
def install_operator(
    kube_cluster: KindCluster,
    cluster_models_root: Path,
    pod_hub: HubServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """The namespace's operator, downloading from the pods' local Hub; its log file."""
    workdir = tmp_path_factory.mktemp("install-operator")
    hub_env = {"KUBEINFER_OPERATOR__HF_ENDPOINT": pod_hub.endpoint}
    with namespace_env(kube_cluster, NAMESPACE, cluster_models_root, workdir, operator_env=hub_env) as env:
        assert env.operator is not None
        yield env.operator.log


def apply(cluster: KindCluster, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "ModelInstall", "metadata": {"name": name}, "spec": spec}
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=yaml.safe_dump(body))


def get(cluster: KindCluster, name: str) -> dict[str, Any]:
    result: dict[str, Any] = cluster.get_json("modelinstall", name, "-n", NAMESPACE)
    return result


def phase_is(cluster: KindCluster, name: str, *phases: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        body = get(cluster, name)
        return body if (body.get("status") or {}).get("phase") in phases else None

    return check


def events(cluster: KindCluster, name: str) -> list[str]:
    items = cluster.get_json("events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}")["items"]
    return [f"{e['reason']}: {e['message']}" for e in items]


def delete(cluster: KindCluster, name: str) -> None:
    cluster.kubectl("delete", "modelinstall", name, "-n", NAMESPACE, "--wait=true", "--timeout=180s", check=False)


def hf_source() -> dict[str, Any]:
    return {"hf": {"repo": REPO, "file": FILENAME}}


def test_installed_model_is_served_and_listed_by_the_gateway(
    kube_cluster: KindCluster, install_operator: Path, cluster_models_root: Path, tmp_path: Path
) -> None:
    spec = {
        "model": "smollm2-135m",
        "source": {"pypi": "smollm2-135m"},
        "quantization": "Q4_1",
        "quantize": ["Q8_0"],
        "serving": {"pool": "cpu", "ctxSize": 1024, "parallel": 1, "threads": 1, "resources": {"cpu": "200m"}},
    }
    apply(kube_cluster, "smollm2", spec)
    try:
        body = wait_for(phase_is(kube_cluster, "smollm2", "Ready", "Failed"), timeout=420, what="smollm2 Ready")
        status = body["status"]
        assert status["phase"] == "Ready", status
        files = {f["quantization"]: f for f in status["files"]}
        assert files["Q4_1"]["sha256"] == SHA256
        assert files["Q8_0"]["source"] == "quantize:Q4_1 of pypi:smollm2-135m"
        assert status["sizing"]["quantization"] == "Q8_0"
        assert status["sizing"]["estimatedBytes"] > files["Q8_0"]["sizeBytes"]
        assert status["serving"]["quantization"] == "Q8_0"
        [endpoint] = status["serving"]["endpoints"]
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert ready["status"] == "True"
        assert ready["observedGeneration"] == body["metadata"]["generation"]

        reply = OpenAI(base_url=f"{endpoint}/v1", api_key="none", timeout=60).chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
        assert reply.choices[0].message.content

        pods = kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", "kubeinfer.dev/model-install=smollm2")["items"]
        assert {p["spec"]["nodeName"] for p in pods} == {kube_cluster.node_name}
        for pod in pods:
            assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
        printed = kube_cluster.kubectl("get", "mi", "smollm2", "-n", NAMESPACE).stdout
        assert "Ready" in printed
        assert "Q8_0" in printed

        gateway_kubeconfig = service_account_kubeconfig(kube_cluster, NAMESPACE, GATEWAY_SA, tmp_path / "kubeconfig")
        gateway = GatewayProcess(
            tmp_path / "gw",
            endpoint,
            tmp_path / "gateway.log",
            env={"KUBEINFER_GATEWAY__CLUSTER_NAMESPACE": NAMESPACE, "KUBECONFIG": str(gateway_kubeconfig)},
        )
        gateway.start()
        try:
            listed = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
            assert listed.status_code == 200, listed.text
            assert "smollm2-135m" in [m["id"] for m in listed.json()["data"]]
        finally:
            gateway.stop()
        assert any(e.startswith("Ready:") for e in events(kube_cluster, "smollm2"))
    finally:
        delete(kube_cluster, "smollm2")
    wait_for(
        lambda: (
            not kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", "kubeinfer.dev/model-install=smollm2")["items"]
        ),
        timeout=120,
        what="the server pods garbage-collected with their ModelInstall",
    )


def test_cut_download_resumes_and_a_second_install_fetches_nothing(
    kube_cluster: KindCluster, install_operator: Path, pod_hub: HubServer, smollm2_gguf: Path, cluster_models_root: Path
) -> None:
    """The first pod's transfer is cut; the Job's next pod asks only for the missing bytes."""
    size = smollm2_gguf.stat().st_size
    pod_hub.reset(Behaviour(cut_after=size // 3))
    spec = {"model": "mi-hf-resume", "source": hf_source(), "quantization": "Q4_1"}
    try:
        apply(kube_cluster, "hf-first", spec)
        body = wait_for(phase_is(kube_cluster, "hf-first", "Ready", "Failed"), timeout=300, what="hf-first")
        assert body["status"]["phase"] == "Ready", body["status"]
        assert body["status"]["files"][0]["sha256"] == SHA256
        first, second = pod_hub.gets()
        assert first.range is None
        assert second.range is not None
        resumed_from = int(second.range.removeprefix("bytes=").rstrip("-"))
        assert 0 < resumed_from <= first.bytes_sent
        assert second.bytes_sent == size - resumed_from

        apply(kube_cluster, "hf-second", spec)
        body = wait_for(phase_is(kube_cluster, "hf-second", "Ready", "Failed"), timeout=300, what="hf-second")
        assert body["status"]["phase"] == "Ready", body["status"]
        assert len(pod_hub.gets()) == 2
    finally:
        delete(kube_cluster, "hf-first")
        delete(kube_cluster, "hf-second")
        _remove_model(cluster_models_root, "mi-hf-resume")


def test_corrupted_file_fails_the_checksum_with_a_clear_condition(
    kube_cluster: KindCluster, install_operator: Path, pod_hub: HubServer, cluster_models_root: Path
) -> None:
    pod_hub.reset()
    url = f"{pod_hub.endpoint}/{REPO}/resolve/main/{FILENAME}"
    spec = {"model": "mi-bad-sum", "source": {"url": {"url": url, "sha256": "0" * 64}}, "quantization": "Q4_1"}
    try:
        apply(kube_cluster, "bad-sum", spec)
        body = wait_for(phase_is(kube_cluster, "bad-sum", "Failed", "Ready"), timeout=300, what="bad-sum Failed")
        conditions = {c["type"]: c for c in body["status"]["conditions"]}
        assert conditions["Installed"]["status"] == "False"
        assert conditions["Installed"]["reason"] == "ChecksumMismatch"
        assert f"expected sha256 {'0' * 64}, got {SHA256}" in conditions["Installed"]["message"]
        assert not list((cluster_models_root / "mi-bad-sum").glob("*.gguf*"))
        assert any(e.startswith("ChecksumMismatch:") for e in events(kube_cluster, "bad-sum"))
    finally:
        delete(kube_cluster, "bad-sum")
        _remove_model(cluster_models_root, "mi-bad-sum")


def test_deleting_mid_download_cancels_it_and_removes_partial_files(
    kube_cluster: KindCluster, install_operator: Path, pod_hub: HubServer, cluster_models_root: Path, smollm2_gguf: Path
) -> None:
    pod_hub.reset(Behaviour(bytes_per_second=1_000_000))
    model_dir = cluster_models_root / "mi-cancel"
    spec = {"model": "mi-cancel", "source": hf_source(), "quantization": "Q4_1"}
    try:
        apply(kube_cluster, "cancel-me", spec)

        def downloading() -> bool:
            progress = (get(kube_cluster, "cancel-me").get("status") or {}).get("progress") or {}
            return progress.get("bytesDone", 0) > 0 and bool(list(model_dir.glob(".*.partial")))

        wait_for(downloading, timeout=240, what="progress in status and a partial file")
        progress = get(kube_cluster, "cancel-me")["status"]["progress"]
        assert progress["bytesTotal"] == smollm2_gguf.stat().st_size
        delete(kube_cluster, "cancel-me")
        assert kube_cluster.kubectl("get", "mi", "cancel-me", "-n", NAMESPACE, check=False).returncode != 0
        assert not list(model_dir.glob(".*.partial"))
        assert not list(model_dir.glob("*.gguf"))
        selector = "kubeinfer.dev/model-install=cancel-me"
        wait_for(
            lambda: not kube_cluster.get_json("pods", "-n", NAMESPACE, "-l", selector)["items"],
            timeout=60,
            what="no install or clean-up pods left",
        )
    finally:
        pod_hub.reset()
        delete(kube_cluster, "cancel-me")
        _remove_model(cluster_models_root, "mi-cancel")


def test_a_server_whose_pool_has_no_nodes_says_it_cannot_be_scheduled(
    kube_cluster: KindCluster, install_operator: Path, pod_hub: HubServer, cluster_models_root: Path
) -> None:
    """The install runs; the server's pool has no node, so the scheduler's words reach the condition."""
    pod_hub.reset()
    spec = {
        "model": "mi-nowhere",
        "source": hf_source(),
        "quantization": "Q4_1",
        "serving": {"pool": "nowhere", "ctxSize": 512, "parallel": 1, "threads": 1},
    }
    apply(kube_cluster, "nowhere", spec)
    try:
        first = wait_for(lambda: get(kube_cluster, "nowhere").get("status"), timeout=60, what="a status on nowhere")
        assert first["phase"] in ("Pending", "Downloading"), first

        def blocked() -> dict[str, Any] | None:
            status = get(kube_cluster, "nowhere").get("status") or {}
            found = {c["type"]: c for c in status.get("conditions", [])}.get("PodsStarted")
            return found if found and found["status"] == "False" else None

        installed = wait_for(phase_is(kube_cluster, "nowhere", "Starting", "Failed"), timeout=300, what="installed")
        assert installed["status"]["phase"] == "Starting", installed["status"]
        condition = wait_for(blocked, timeout=60, what="PodsStarted=False on nowhere")
        assert condition["reason"] == "Unschedulable"
        assert condition["message"].startswith("Pod nowhere-server-"), condition["message"]
        assert "cannot be scheduled: 0/" in condition["message"]
        assert "node affinity/selector" in condition["message"]
        status = get(kube_cluster, "nowhere")["status"]
        assert status["phase"] == "Starting"
        assert {c["type"]: c["status"] for c in status["conditions"]}["Installed"] == "True"
        assert any(e.startswith("Unschedulable: Pod nowhere-server-") for e in events(kube_cluster, "nowhere"))
    finally:
        delete(kube_cluster, "nowhere")
        _remove_model(cluster_models_root, "mi-nowhere")


def test_a_crash_looping_server_says_why_and_a_corrected_spec_rolls_it(
    kube_cluster: KindCluster, install_operator: Path, pod_hub: HubServer, cluster_models_root: Path
) -> None:
    """llama-server exits on an unknown flag: the kubelet's crash loop reaches the condition with the server's
    own words; removing the flag replaces the Deployment's pod template and the model becomes Ready."""
    pod_hub.reset()
    serving = {"pool": "cpu", "ctxSize": 512, "parallel": 1, "threads": 1, "resources": {"cpu": "200m"}}
    spec = {
        "model": "mi-crash",
        "source": hf_source(),
        "quantization": "Q4_1",
        "serving": serving | {"extraArgs": ["--no-such-flag"]},
    }
    apply(kube_cluster, "crash", spec)
    try:

        def crash_loop() -> dict[str, Any] | None:
            status = get(kube_cluster, "crash").get("status") or {}
            found = {c["type"]: c for c in status.get("conditions", [])}.get("PodsStarted")
            return found if found and found["reason"] == "CrashLoop" else None

        condition = wait_for(crash_loop, timeout=420, what="PodsStarted=False CrashLoop on crash")
        assert condition["status"] == "False"
        assert condition["message"].startswith("Pod crash-server-"), condition["message"]
        assert "container server keeps exiting (CrashLoopBackOff" in condition["message"]
        assert "--no-such-flag" in condition["message"], "the server's own error, from its log's last lines"
        assert "--previous" in condition["message"]
        assert get(kube_cluster, "crash")["status"]["phase"] == "Starting"
        assert any(e.startswith("CrashLoop: Pod crash-server-") for e in events(kube_cluster, "crash"))

        before = kube_cluster.get_json("deployment", "crash-server", "-n", NAMESPACE)
        apply(kube_cluster, "crash", spec | {"serving": serving})
        wait_for(phase_is(kube_cluster, "crash", "Ready"), timeout=300, what="crash Ready once fixed")

        def started() -> dict[str, Any] | None:
            status = get(kube_cluster, "crash").get("status") or {}
            found = {c["type"]: c for c in status.get("conditions", [])}.get("PodsStarted")
            return found if found and found["status"] == "True" else None

        wait_for(started, timeout=60, what="PodsStarted=True once the server answers")  # written after Ready
        after = kube_cluster.get_json("deployment", "crash-server", "-n", NAMESPACE)
        assert after["metadata"]["uid"] == before["metadata"]["uid"], "the same Deployment, rolled"
        hash_key = "kubeinfer.dev/template-hash"
        assert after["metadata"]["annotations"][hash_key] != before["metadata"]["annotations"][hash_key]
        assert "--no-such-flag" not in after["spec"]["template"]["spec"]["containers"][0]["args"]
        assert any(e.startswith("ServerUpdated:") for e in events(kube_cluster, "crash"))
    finally:
        delete(kube_cluster, "crash")
        _remove_model(cluster_models_root, "mi-crash")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "source": {"pypi": "smollm2-135m", "url": {"url": "http://x/m.gguf", "sha256": "0" * 64}},
                "quantization": "Q4_1",
            },
            "set exactly one of hf, pypi, url, pvc",
        ),
        ({"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1", "quantize": ["Q4_1"]}, "quantize lists"),
        (
            {"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1", "serving": {"quantization": "Q8_0"}},
            "serving.quantization must be",
        ),
        ({"source": {"url": {"url": "http://x/m.gguf", "sha256": "abc"}}, "quantization": "Q4_1"}, "sha256"),
    ],
)
def test_api_server_rejects_invalid_model_installs(
    kube_cluster: KindCluster, install_operator: Path, spec: dict[str, Any], message: str
) -> None:
    body = {"apiVersion": "kubeinfer.dev/v1alpha1", "kind": "ModelInstall", "metadata": {"name": "bad"}, "spec": spec}
    proc = kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def _remove_model(models_root: Path, model: str) -> None:
    root = models_root / model
    if root.is_dir():
        for item in root.iterdir():
            item.unlink()
        root.rmdir()


def test_idle_model_scales_to_zero_and_back_up_on_demand(kube_cluster: KindCluster, install_operator: Path) -> None:
    """A running BatchJob renews the `kubeinfer.dev/last-demand` annotation; here the test writes it the same way."""
    spec = {
        "model": "smollm2-135m",
        "source": {"pypi": "smollm2-135m"},
        "quantization": "Q4_1",
        "serving": {
            "pool": "cpu",
            "ctxSize": 512,
            "parallel": 1,
            "threads": 1,
            "idleSeconds": 10,
            "resources": {"cpu": "200m"},
        },
    }
    apply(kube_cluster, "idler", spec)
    try:
        body = wait_for(phase_is(kube_cluster, "idler", "Idle", "Failed"), timeout=300, what="idler Idle")
        assert body["status"]["phase"] == "Idle", body["status"]
        ready = {c["type"]: c for c in body["status"]["conditions"]}["Ready"]
        assert ready["reason"] == "ScaledToZero"
        assert kube_cluster.get_json("deployment", "idler-server", "-n", NAMESPACE)["spec"]["replicas"] == 0

        kube_cluster.kubectl(
            "annotate", "mi", "idler", "-n", NAMESPACE, "--overwrite", f"kubeinfer.dev/last-demand={int(time.time())}"
        )
        body = wait_for(phase_is(kube_cluster, "idler", "Ready"), timeout=180, what="idler Ready again")
        [endpoint] = body["status"]["serving"]["endpoints"]
        assert httpx.get(f"{endpoint}/v1/models", timeout=30).status_code == 200
        assert any(e.startswith("ScaledToZero:") for e in events(kube_cluster, "idler"))
    finally:
        delete(kube_cluster, "idler")
