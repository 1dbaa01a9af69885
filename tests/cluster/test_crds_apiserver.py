"""The generated CRDs on a real kube-apiserver (kind): established, printer columns, schema and CEL rejections,
placement on the real node and on kwok's simulated CPU and GPU pools."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubeinfer.settings import OperatorSettings
from testbed.kind import REPO_ROOT, KindCluster
from testbed.wait import wait_for

CRD_DIR = REPO_ROOT / "crds"
QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
NAMESPACE = "crd-tests"
GROUP, VERSION, PLURAL = "kubeinfer.dev", "v1alpha1", "benchmarkmatrices"

Manifest = dict[str, Any]
KUBEINFER_IMAGE = OperatorSettings.model_fields["runner_image"].default


def quickstart() -> Manifest:
    manifest: Manifest = yaml.safe_load(QUICKSTART.read_text())
    return manifest


def with_engine_type(engine_type: str, pool: str | None = None) -> Callable[[Manifest], None]:
    def mutate(m: Manifest) -> None:
        m["spec"]["engine"]["type"] = engine_type
        if pool is not None:
            m["spec"]["placement"] = {"pool": pool}

    return mutate


def set_ctx_size(value: int) -> Callable[[Manifest], None]:
    def mutate(m: Manifest) -> None:
        m["spec"]["engine"]["ctxSize"] = value

    return mutate


def quantize_from_unlisted(m: Manifest) -> None:
    m["spec"]["models"][0]["files"] = {"Q4_1": "pypi:smollm2-135m", "Q8_0": "quantize:F16"}


def duplicate_model(m: Manifest) -> None:
    m["spec"]["models"].append(copy.deepcopy(m["spec"]["models"][0]))


def misspelled_field(m: Manifest) -> None:
    m["spec"]["engine"]["ctxsize"] = m["spec"]["engine"].pop("ctxSize")


def stress_abort_below_max(m: Manifest) -> None:
    m["spec"]["profiles"]["stress"].update(maxTemperatureCelsius=85, abortTemperatureCelsius=80)


def interactive_load(**settings: Any) -> Callable[[Manifest], None]:
    def mutate(m: Manifest) -> None:
        m["spec"]["profiles"]["interactive"].update(settings)

    return mutate


# (case id, mutation, strings the API server's message must contain: the field and what is wrong with it)
INVALID: list[tuple[str, Callable[[Manifest], None], list[str]]] = [
    ("negative-ctx-size", set_ctx_size(-1), ["spec.engine.ctxSize", "greater than or equal to 128"]),
    ("unknown-engine-type", with_engine_type("tensorrt"), ["spec.engine.type", 'Unsupported value: "tensorrt"']),
    ("vllm-on-cpu-pool", with_engine_type("vllm", pool="cpu"), ["engine.type vllm needs placement.pool gpu"]),
    ("quantize-base-not-listed", quantize_from_unlisted, ["spec.models[0]", "quantize:<base>"]),
    ("duplicate-model-names", duplicate_model, ["model names must be unique"]),
    ("stress-abort-below-max", stress_abort_below_max, ["spec.profiles.stress", "abortTemperatureCelsius"]),
    ("misspelled-field", misspelled_field, ['unknown field "spec.engine.ctxsize"']),
    (
        "scenario-longer-than-slot",
        interactive_load(traffic={"scenario": "D(4000,200)"}),
        ["spec.profiles.interactive.traffic.scenario", "must fit one slot"],
    ),
    (
        "turns-and-prefix-longer-than-slot",
        interactive_load(traffic={"scenario": "D(1000,500)", "turns": 2, "sharedPrefixTokens": 1200}),
        ["spec.profiles.interactive.traffic.scenario", "must fit one slot"],
    ),
    (
        "unknown-scenario-distribution",
        interactive_load(traffic={"scenario": "X(1,2)"}),
        ["spec.profiles.interactive.traffic.scenario", "should match"],
    ),
    (
        "negative-sweep-rate",
        interactive_load(sweep={"rates": [-1]}),
        ["spec.profiles.interactive.sweep.rates[0]", "should be greater than 0"],
    ),
]
# Schema and CEL failures are 422 Invalid; strict field validation refuses to decode an unknown field (400).
HTTP_STATUS = {"misspelled-field": (400, "BadRequest")}


def invalid_manifest(case: str, mutate: Callable[[Manifest], None]) -> Manifest:
    manifest = quickstart()
    manifest["metadata"] = {"name": f"invalid-{case}", "namespace": NAMESPACE}
    mutate(manifest)
    return manifest


@pytest.fixture(scope="module")
def crds(kube_cluster: KindCluster) -> list[str]:
    """Every CRD in crds/ applied and Established; a rejected CRD fails here with the API server's message."""
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in sorted(CRD_DIR.glob("*.yaml"))]
    assert names, f"no CRDs in {CRD_DIR}"
    kube_cluster.kubectl("apply", "-f", str(CRD_DIR))
    for name in names:
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    kube_cluster.kubectl("create", "namespace", NAMESPACE)
    # Discovery of a new group lags Established by a moment; kubectl's cache would otherwise miss `bm`.
    wait_for(
        lambda: kube_cluster.kubectl("get", "bm", "-n", NAMESPACE, check=False).returncode == 0,
        what="the bm short name in discovery",
    )
    return names


@pytest.fixture(scope="module")
def api_client(kube_cluster: KindCluster) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))  # type: ignore[no-untyped-call]
    yield api
    api.close()  # type: ignore[no-untyped-call]


def test_crds_are_established_with_status_subresource(kube_cluster: KindCluster, crds: list[str]) -> None:
    for name in crds:
        crd = kube_cluster.get_json(f"crd/{name}")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        assert all(v.get("subresources", {}).get("status") == {} for v in crd["spec"]["versions"])


def test_quickstart_applies_and_get_shows_printer_columns(kube_cluster: KindCluster, crds: list[str]) -> None:
    applied = kube_cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(QUICKSTART))
    assert "benchmarkmatrix.kubeinfer.dev/quickstart created" in applied.stdout

    for resource in ("bm", "matrix", "benchmarkmatrix", "benchmarkmatrices.kubeinfer.dev"):
        table = kube_cluster.kubectl("get", resource, "quickstart", "-n", NAMESPACE).stdout.splitlines()
        assert table[0].split() == ["NAME", "PHASE", "DONE", "CELLS", "BEST", "AGE"], table
        assert table[1].split()[0] == "quickstart"

    stored = kube_cluster.get_json("bm", "quickstart", "-n", NAMESPACE)
    # Defaults from the schema are applied by the API server, so the operator reads a complete spec.
    assert stored["spec"]["engine"]["type"] == "llama.cpp"
    assert stored["spec"]["profiles"]["interactive"]["maxTokens"] == 64
    assert stored["spec"]["profiles"]["interactive"]["minTokensPerSecond"] == 2


@pytest.mark.parametrize(("case", "mutate", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_kubectl_apply_rejects_invalid_manifest_naming_the_field(
    kube_cluster: KindCluster, crds: list[str], case: str, mutate: Callable[[Manifest], None], expected: list[str]
) -> None:
    manifest = invalid_manifest(case, mutate)
    result = kube_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert result.returncode != 0, f"{case} was accepted: {result.stdout}"
    for text in expected:
        assert text in result.stderr, f"{text!r} not in: {result.stderr}"
    assert kube_cluster.kubectl("get", "bm", manifest["metadata"]["name"], "-n", NAMESPACE, check=False).returncode


@pytest.mark.parametrize(("case", "mutate", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_python_client_rejects_invalid_manifest_naming_the_field(
    api_client: client.ApiClient, crds: list[str], case: str, mutate: Callable[[Manifest], None], expected: list[str]
) -> None:
    manifest = invalid_manifest(case, mutate)
    api = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as excinfo:
        api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest, field_validation="Strict")
    status, reason = HTTP_STATUS.get(case, (422, "Invalid"))
    assert excinfo.value.status == status, excinfo.value.body
    body = json.loads(str(excinfo.value.body))
    assert body["reason"] == reason
    for text in expected:
        assert text in body["message"], f"{text!r} not in: {body['message']}"
    if status == 422:
        fields = " ".join(cause.get("field", "") for cause in body["details"]["causes"])
        assert fields.startswith("spec"), body["details"]


# --- placement through the real scheduler -------------------------------------------------------------------


def pod(name: str, *, pool: str | None = None, gpus: int = 0, tolerate_gpu: bool = False) -> Manifest:
    """A pod placed as kubeinfer places its own: the pool's nodeSelector and a toleration of the pool's taint.

    Its image is kubeinfer's, loaded into the node: a pod that lands on the real node starts for real.
    """
    container: Manifest = {
        "name": "main",
        "image": KUBEINFER_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
    }
    if gpus:
        # Extended resources are requested through limits (requests default to them).
        container["resources"]["limits"] = {"nvidia.com/gpu": str(gpus)}
    spec: Manifest = {"containers": [container], "terminationGracePeriodSeconds": 0, "tolerations": []}
    if pool:
        spec["nodeSelector"] = {"kubeinfer.dev/pool": pool}
        spec["tolerations"].append({"key": "kubeinfer.dev/pool", "value": pool, "effect": "NoSchedule"})
    if tolerate_gpu:
        spec["tolerations"].append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def create(cluster: KindCluster, manifest: Manifest) -> None:
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(manifest))


def nodes(cluster: KindCluster) -> dict[str, Manifest]:
    items: list[Manifest] = cluster.get_json("nodes")["items"]
    return {n["metadata"]["name"]: n for n in items}


def pool_of(node: Manifest) -> str:
    return str(node["metadata"]["labels"].get("kubeinfer.dev/pool", ""))


def running_on(cluster: KindCluster, name: str) -> str:
    """Wait until kwok reports the pod Running and return the node the scheduler bound it to."""

    def check() -> str | None:
        p = cluster.get_json("pod", name, "-n", NAMESPACE)
        node: str | None = p["spec"].get("nodeName")
        return node if node and p["status"].get("phase") == "Running" else None

    return wait_for(check, timeout=60, what=f"pod {name} Running")


def test_pods_bind_to_their_pool_and_plain_pods_stay_off_the_simulated_ones(
    kube_cluster: KindCluster, crds: list[str]
) -> None:
    pools = {name: pool_of(n) for name, n in nodes(kube_cluster).items()}
    assert sorted(pools.values()) == ["cpu", "cpu", "gpu", "gpu", "local"], pools

    create(kube_cluster, pod("wants-gpu", pool="gpu", gpus=1, tolerate_gpu=True))
    create(kube_cluster, pod("wants-cpu", pool="cpu"))
    create(kube_cluster, pod("plain"))

    assert pools[running_on(kube_cluster, "wants-gpu")] == "gpu"
    assert pools[running_on(kube_cluster, "wants-cpu")] == "cpu"
    # The simulated pools are tainted: a pod that is not kubeinfer's lands on the real node and really runs.
    assert running_on(kube_cluster, "plain") == kube_cluster.node_name
    plain = kube_cluster.get_json("pod", "plain", "-n", NAMESPACE)
    assert plain["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")


def test_gpu_pod_without_toleration_stays_unschedulable(kube_cluster: KindCluster, crds: list[str]) -> None:
    create(kube_cluster, pod("gpu-no-toleration", gpus=1))

    def unschedulable() -> str | None:
        p = kube_cluster.get_json("pod", "gpu-no-toleration", "-n", NAMESPACE)
        for c in p["status"].get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable":
                return str(c["message"])
        return None

    message = wait_for(unschedulable, timeout=60, what="the scheduler to give up on gpu-no-toleration")
    assert "untolerated taint" in message, message
    assert "nvidia.com/gpu" in message, message


def test_node_pools_have_the_documented_shape(kube_cluster: KindCluster) -> None:
    for name, node in nodes(kube_cluster).items():
        annotations = node["metadata"].get("annotations", {})
        capacity, taints = node["status"]["capacity"], node["spec"].get("taints", [])
        pool = pool_of(node)
        if pool == "cpu":
            assert annotations.get("kwok.x-k8s.io/node") == "fake"
            assert (capacity["cpu"], capacity["memory"], capacity["pods"]) == ("16", "64Gi", "110")
            pool_taint = [("kubeinfer.dev/pool", "cpu", "NoSchedule")]
            assert [(t["key"], t["value"], t["effect"]) for t in taints] == pool_taint
        elif pool == "gpu":
            assert annotations.get("kwok.x-k8s.io/node") == "fake"
            assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
            assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
            assert [(t["key"], t["value"], t["effect"]) for t in taints] == [
                ("kubeinfer.dev/pool", "gpu", "NoSchedule"),
                ("nvidia.com/gpu", "present", "NoSchedule"),
            ]
        else:
            # The real node: kind's kubelet on containerd; kwok must neither heartbeat it nor fake its pods.
            assert (name, pool) == (kube_cluster.node_name, "local")
            assert "kwok.x-k8s.io/node" not in annotations
            assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        if pool in ("cpu", "gpu"):
            assert conditions.get("Ready") == "True", (name, conditions)
