"""ModelInstall and BatchJob resources, the OOM fallback order, and the objects the operator builds for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kubeinfer.models.install import remove_partials, serving_order
from kubeinfer.operator.builders.model_install import (
    build_clean_job,
    build_install_job,
    build_server_deployment,
    build_service,
)
from kubeinfer.operator.rbac import OPERATOR_RULES
from kubeinfer.resources.batch_job import BatchJob
from kubeinfer.resources.loader import ManifestError, load_model_install
from kubeinfer.resources.model_install import ModelInstall, ModelInstallSpec
from kubeinfer.resources.names import QUANT_LABEL
from kubeinfer.settings import OperatorSettings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "model-install.yaml"


def install(**spec: Any) -> tuple[dict[str, Any], ModelInstall]:
    full = {"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1", **spec}
    body = {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "ModelInstall",
        "metadata": {"name": "smol", "namespace": "ns", "uid": "abcdef123456", "generation": 3},
        "spec": full,
    }
    return body, ModelInstall.model_validate({**body, "metadata": {"name": "smol", "namespace": "ns"}})


def test_example_manifest_loads() -> None:
    resource = load_model_install(EXAMPLE)
    assert resource.model_name == "smollm2-135m"
    assert resource.spec.files("/source") == {
        "Q4_1": "pypi:smollm2-135m",
        "Q8_0": "quantize:Q4_1",
        "Q4_K_M": "quantize:Q4_1",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {}}, "set exactly one of hf, pypi, url, pvc (got none)"),
        ({"source": {"pypi": "a", "hf": {"repo": "o/r", "file": "f.gguf"}}}, "(got hf, pypi)"),
        ({"quantize": ["Q4_1"]}, "quantize lists the source's own quantization Q4_1"),
        ({"quantize": ["Q8_0", "Q8_0"]}, "lists a quantization twice"),
        ({"quantize": ["Q9_Z"]}, "'Q9_Z' is not a known GGUF quantization"),
        ({"serving": {"quantization": "Q8_0"}}, "serving.quantization Q8_0 is neither"),
        ({"source": {"url": {"url": "https://x/m.gguf"}}}, "sha256"),
        ({"source": {"pvc": {"claimName": "c", "path": "../etc/passwd"}}}, "must not contain '..'"),
        ({"serving": {"replicas": -1}}, "replicas"),
    ],
)
def test_invalid_specs_name_the_problem(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ModelInstallSpec.model_validate({"source": {"pypi": "smollm2-135m"}, "quantization": "Q4_1", **spec})


def test_broken_manifest_file_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: kubeinfer.dev/v1alpha1\nkind: ModelInstall\nmetadata: {name: x}\nspec: [1, 2\n")
    with pytest.raises(ManifestError):
        load_model_install(path)
    path.write_text("apiVersion: kubeinfer.dev/v1alpha1\nkind: BenchmarkMatrix\nmetadata: {name: x}\nspec: {}\n")
    with pytest.raises(ManifestError, match="ModelInstall"):
        load_model_install(path)


def test_sources_map_to_resolver_uris() -> None:
    hf = ModelInstallSpec.model_validate(
        {"source": {"hf": {"repo": "o/r", "file": "m.gguf", "revision": "v1"}}, "quantization": "Q8_0"}
    )
    assert hf.files("/source") == {"Q8_0": "hf://o/r/m.gguf@v1"}
    pvc = ModelInstallSpec.model_validate(
        {"source": {"pvc": {"claimName": "old", "path": "models/m.gguf", "sha256": "a" * 64}}, "quantization": "F16"}
    )
    assert pvc.files("/source") == {"F16": f"file:///source/models/m.gguf#sha256={'a' * 64}"}


def test_serving_order_starts_with_the_choice_and_only_shrinks() -> None:
    sizes = {"Q4_1": 100, "Q8_0": 150, "Q4_K_M": 105}
    _, default = install(quantize=["Q8_0", "Q4_K_M"], serving={})
    assert serving_order(default.spec, sizes) == ["Q8_0", "Q4_K_M", "Q4_1"]
    _, chosen = install(quantize=["Q8_0", "Q4_K_M"], serving={"quantization": "Q4_K_M"})
    assert serving_order(chosen.spec, sizes) == ["Q4_K_M", "Q4_1"]


def test_remove_partials_keeps_finished_files(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "m.Q4_1.gguf").write_bytes(b"done")
    (tmp_path / "m" / ".m.Q8_0.gguf.partial").write_bytes(b"half")
    assert [p.name for p in remove_partials(tmp_path, "m")] == [".m.Q8_0.gguf.partial"]
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["m.Q4_1.gguf"]
    assert remove_partials(tmp_path, "absent") == []


def test_install_job_carries_the_resource_and_resumes_by_retrying() -> None:
    body, parsed = install(source={"hf": {"repo": "o/r", "file": "m.gguf"}})
    settings = OperatorSettings(hf_endpoint="http://mirror:8080")
    job = build_install_job(body, parsed, settings)
    assert job["metadata"]["name"] == "smol-install-g3"
    assert job["spec"]["backoffLimit"] > 1
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:3] == ["kubeinfer", "step", "install"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ModelInstall.model_validate_json(env["KUBEINFER_MODEL_INSTALL"]).spec == parsed.spec
    assert env["HF_ENDPOINT"] == "http://mirror:8080"
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "model-cache", "readOnly": False}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "abcdef123456"


def test_gated_hf_repo_token_comes_from_a_secret() -> None:
    source = {"hf": {"repo": "o/r", "file": "m.gguf", "tokenSecret": {"name": "hf-token"}}}
    body, parsed = install(source=source)
    container = build_install_job(body, parsed, OperatorSettings())["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}


def test_pvc_source_is_mounted_read_only() -> None:
    body, parsed = install(source={"pvc": {"claimName": "old-models", "path": "m.gguf"}})
    pod = build_install_job(body, parsed, OperatorSettings())["spec"]["template"]["spec"]
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "old-models", "readOnly": True}} in pod["volumes"]


def test_clean_job_is_not_owned_by_the_resource_being_deleted() -> None:
    body, parsed = install()
    job = build_clean_job(body, parsed, OperatorSettings())
    assert "ownerReferences" not in job["metadata"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "kubeinfer",
        "models",
        "clean-partials",
        "smol",
    ]


def test_server_deployment_serves_one_quantization_on_the_pool() -> None:
    body, parsed = install(
        quantize=["Q8_0"],
        serving={"pool": "gpu", "ctxSize": 2048, "parallel": 2, "resources": {"memory": "2Gi"}, "replicas": 2},
    )
    deployment = build_server_deployment(body, parsed, "smol/smol.Q8_0.gguf", "Q8_0", 10**9, OperatorSettings())
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["metadata"]["labels"][QUANT_LABEL] == "Q8_0"
    assert container["image"] == "ghcr.io/kubeinfer/llama-server-cuda:0.3.36"
    assert container["args"][container["args"].index("--model") + 1] == "/models/smol/smol.Q8_0.gguf"
    assert container["resources"]["limits"] == {"memory": "2Gi", "nvidia.com/gpu": "1"}
    assert container["command"][:3] == ["kubeinfer", "engine", "serve"]  # the memory supervisor
    assert container["command"][-1] == "llama-server"
    assert "--cold-load" not in container["command"]  # a served model loads once; only matrix cells time a cold load
    assert {"name": "memory", "containerPort": 8081} in container["ports"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    service = build_service(body, parsed)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_vllm_serving_uses_the_upstream_image() -> None:
    body, parsed = install(serving={"engine": "vllm", "pool": "gpu"})
    container = build_server_deployment(body, parsed, "smol/x.gguf", "Q4_1", 1, OperatorSettings())["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai")
    assert container["command"][:2] == ["vllm", "serve"]
    assert [port["name"] for port in container["ports"]] == ["http"]  # upstream's image has no supervisor


def test_operator_role_covers_what_model_installs_need() -> None:
    granted = {
        (g, r, v)
        for rule in OPERATOR_RULES
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    for needed in [
        ("kubeinfer.dev", "modelinstalls", "watch"),
        ("kubeinfer.dev", "modelinstalls/status", "patch"),
        ("apps", "deployments", "patch"),
        ("", "services", "create"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("batch", "jobs", "delete"),
    ]:
        assert needed in granted


def test_batch_job_spec_validates() -> None:
    ok = BatchJob.model_validate(
        {"metadata": {"name": "b"}, "spec": {"inputFileId": "file-abc", "endpoint": "/v1/completions"}}
    )
    assert ok.spec.completion_window == "24h"
    with pytest.raises(ValidationError, match="input_file_id|inputFileId"):
        BatchJob.model_validate({"metadata": {"name": "b"}, "spec": {"inputFileId": "not-a-file"}})
    with pytest.raises(ValidationError, match="endpoint"):
        BatchJob.model_validate({"metadata": {"name": "b"}, "spec": {"inputFileId": "file-a", "endpoint": "/v1/x"}})


def test_idle_after_idle_seconds_without_demand() -> None:
    import time

    from kubeinfer.operator.model_install import _idle
    from kubeinfer.resources.names import DEMAND_ANNOTATION

    body, parsed = install(serving={"idleSeconds": 60})
    long_ago = "2020-01-01T00:00:00Z"
    body["metadata"]["creationTimestamp"] = long_ago
    assert _idle(body, parsed)
    body["metadata"]["annotations"] = {DEMAND_ANNOTATION: str(int(time.time()) - 5)}
    assert not _idle(body, parsed)
    body["metadata"]["annotations"] = {DEMAND_ANNOTATION: "not-a-number"}
    assert _idle(body, parsed)
    _, never = install(serving={})
    assert not _idle(body, never)


def test_idle_model_deployment_has_zero_replicas() -> None:
    body, parsed = install(serving={"replicas": 3, "idleSeconds": 60})
    deployment = build_server_deployment(body, parsed, "m/m.gguf", "Q4_1", 1, OperatorSettings(), replicas=0)
    assert deployment["spec"]["replicas"] == 0
    assert build_server_deployment(body, parsed, "m/m.gguf", "Q4_1", 1, OperatorSettings())["spec"]["replicas"] == 3


def test_a_template_change_changes_the_hash_the_operator_rolls_on() -> None:
    from kubeinfer.operator.builders.model_install import TEMPLATE_HASH_ANNOTATION

    def hash_of(quant: str = "Q4_1", replicas: int | None = None, **serving: Any) -> str:
        body, parsed = install(serving=serving)
        built = build_server_deployment(body, parsed, "m/m.gguf", quant, 10**9, OperatorSettings(), replicas=replicas)
        return str(built["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION])

    base = hash_of()
    assert hash_of() == base
    assert hash_of(replicas=0) == base, "scaling to zero is a replicas patch, not a rollout"
    assert hash_of(resources={"memory": "2Gi"}) != base
    assert hash_of(pool="big") != base
    assert hash_of(ctxSize=8192) != base
    assert hash_of(extraArgs=["--mlock"]) != base
    assert hash_of(quant="Q8_0") != base
