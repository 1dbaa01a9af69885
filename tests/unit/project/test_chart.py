"""The Helm chart rendered by the real helm (hack/helm/build.sh): RBAC, CRDs, settings, security and variants.

No cluster: `helm template` output is checked against the code it must agree with (rbac.py, crds/, settings, the
ModelInstall model and the operator's builders), and against values.schema.json. tests/cluster/test_chart.py installs
it on the test control plane.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.helm.chart import CHART, REPO_ROOT, HelmError, lint, template
from hack.helm.rbac_rules import render as render_rbac_rules
from kubeinfer.operator.builders.model_install import build_server_deployment, build_service
from kubeinfer.operator.rbac import GATEWAY_RULES, OPERATOR_RULES, RUNNER_RULES
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.resources.names import batch_labels, child_labels, install_labels
from kubeinfer.settings import OperatorSettings, Settings

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
HOOK = "helm.sh/hook"
SCHEMA_ERROR = "values don't meet the specifications of the schema"


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def hook_of(doc: dict[str, Any]) -> str | None:
    return (doc["metadata"].get("annotations") or {}).get(HOOK)


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec the chart renders (workloads, hook Jobs, the test Pod), by object name."""
    specs = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] in POD_KINDS}
    return specs | {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Pod"}


def operator_settings(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """The OperatorSettings the chart's operator pod would read from its env."""
    (container,) = one(docs, "Deployment", "kubeinfer-operator")["spec"]["template"]["spec"]["containers"]
    for name, value in env_of(container).items():
        monkeypatch.setenv(name, value)
    return Settings().operator


def created(body: dict[str, Any]) -> dict[str, Any]:
    """A rendered object as the API server returns it once created (the operator's builders need its uid)."""
    return {**body, "metadata": {**body["metadata"], "uid": "0f0e0d0c-0000-4000-8000-000000000001"}}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return template(CHART / "ci" / "cpu-values.yaml")


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_chart_lints_strictly_with_every_ci_values_file(values: Path | None) -> None:
    out = lint(*([values] if values else []))  # helm's lint mode reports a template's `fail` as INFO
    assert "0 chart(s) failed" in out


def test_defaults_without_an_api_key_fail_at_render_time_naming_both_ways_to_give_one() -> None:
    with pytest.raises(HelmError) as failed:
        template()
    message = str(failed.value)
    assert "gateway.apiKeys: the gateway needs API keys" in message
    assert "--set-json 'gateway.apiKeys.keys=" in message
    assert "gateway.apiKeys.existingSecret" in message


def test_an_existing_secret_needs_no_keys_and_is_the_one_gateway_and_test_mount(tmp_path: Path) -> None:
    docs = template(values_file(tmp_path, {"gateway": {"apiKeys": {"existingSecret": "my-keys", "secretKey": "k"}}}))
    assert not by_kind(docs, "Secret")
    for name in ("kubeinfer-gateway", "kubeinfer-test"):
        pod = pod_specs(docs)[name]
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"my-keys"}, name
    assert env_of(one(docs, "Pod", "kubeinfer-test")["spec"]["containers"][0])["API_KEYS_FILE"].endswith("/k")


def test_cluster_role_and_roles_hold_exactly_the_rules_of_rbac_py(default_docs: list[dict[str, Any]]) -> None:
    (cluster_role,) = by_kind(default_docs, "ClusterRole")
    assert cluster_role["rules"] == OPERATOR_RULES, "run `make chart-rbac`"
    roles = {r["metadata"]["name"]: r["rules"] for r in by_kind(default_docs, "Role") if hook_of(r) is None}
    assert roles == {"kubeinfer-runner": RUNNER_RULES, "kubeinfer-gateway": GATEWAY_RULES}, "run `make chart-rbac`"


def test_gateway_runs_under_its_own_service_account_bound_to_its_role(default_docs: list[dict[str, Any]]) -> None:
    pod = one(default_docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]
    account = one(default_docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["namespace"] == "kubeinfer"
    assert pod.get("automountServiceAccountToken", True) is True
    binding = one(default_docs, "RoleBinding", "kubeinfer-gateway")
    assert binding["metadata"]["namespace"] == "kubeinfer"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "kubeinfer"}
    ]
    assert binding["roleRef"]["kind"] == "Role"
    assert one(default_docs, "Role", binding["roleRef"]["name"])["rules"] == GATEWAY_RULES


def test_rbac_rules_file_is_generated_from_rbac_py() -> None:
    assert (CHART / "files" / "rbac-rules.yaml").read_text() == render_rbac_rules(), "run `make chart-rbac`"


def test_chart_crds_are_the_checked_in_crds() -> None:
    source = {p.name: p.read_text() for p in (REPO_ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert source, "crds/ is empty"
    assert chart == source, "run `make chart-crds`"


def test_operator_env_is_read_by_settings_as_the_values_say(
    default_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = one(default_docs, "Deployment", "kubeinfer-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    fields = set(Settings.model_fields["operator"].annotation.model_fields)  # type: ignore[union-attr]
    for name in env:
        if name.startswith("KUBEINFER_OPERATOR__"):
            assert name.removeprefix("KUBEINFER_OPERATOR__").lower() in fields, name
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    operator = Settings().operator
    assert operator.namespace == "kubeinfer"
    assert operator.runner_image == container["image"] == "ghcr.io/kubeinfer/kubeinfer:0.1.0"
    assert operator.engine_image == "ghcr.io/kubeinfer/llama-server:0.3.36"
    assert (
        operator.runner_service_account
        == one(default_docs, "Role", operator.runner_service_account)["metadata"]["name"]
    )
    assert operator.model_cache_claim == one(default_docs, "PersistentVolumeClaim", "model-cache")["metadata"]["name"]
    assert operator.pool_aliases == {}
    assert container["args"][:2] == ["operator", "run"]
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == one(default_docs, "ClusterRoleBinding", "kubeinfer-operator")["subjects"][0]["name"]
    )


def test_gateway_reads_api_keys_from_the_secret_and_talks_to_the_chart_s_model_install(
    default_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = one(default_docs, "Deployment", "kubeinfer-gateway")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = env_of(container)
    fields = set(Settings.model_fields["gateway"].annotation.model_fields)  # type: ignore[union-attr]
    for name in env:
        if name.startswith("KUBEINFER_GATEWAY__"):
            assert name.removeprefix("KUBEINFER_GATEWAY__").lower() in fields, name
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gateway = Settings().gateway
    keys_file = Path(str(gateway.api_keys_file))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_name = volumes[mounts[str(keys_file.parent)]]["secret"]["secretName"]
    secret = one(default_docs, "Secret", secret_name)
    assert secret["stringData"][keys_file.name].strip() == "sk-ci=ci"
    assert str(gateway.data_dir) in mounts
    claim = volumes[mounts[str(gateway.data_dir)]]["persistentVolumeClaim"]["claimName"]
    pvc = one(default_docs, "PersistentVolumeClaim", claim)
    assert pvc["metadata"]["namespace"] == deployment["metadata"]["namespace"] == gateway.cluster_namespace
    assert gateway.batch_workers == 2
    operator = one(default_docs, "Deployment", "kubeinfer-operator")["spec"]["template"]["spec"]["containers"][0]
    for name, value in env_of(operator).items():
        monkeypatch.setenv(name, value)
    assert Settings().operator.batch_data_claim == claim == "kubeinfer-data"
    # The operator writes reports too large for a ConfigMap into the same data directory the gateway reads.
    operator_spec = one(default_docs, "Deployment", "kubeinfer-operator")["spec"]["template"]["spec"]
    operator_mounts = {m["mountPath"]: m["name"] for m in operator["volumeMounts"]}
    operator_volumes = {v["name"]: v for v in operator_spec["volumes"]}
    assert Settings().gateway.data_dir == gateway.data_dir
    assert operator_volumes[operator_mounts[str(gateway.data_dir)]]["persistentVolumeClaim"]["claimName"] == claim
    url = container["args"][container["args"].index("--engine-url") + 1]
    model = container["args"][container["args"].index("--model") + 1]
    body = created(one(default_docs, "ModelInstall", "kubeinfer-model-server"))
    service = build_service(body, ModelInstall.model_validate(body))
    namespace = body["metadata"]["namespace"]
    assert url == f"http://{service['metadata']['name']}.{namespace}:{service['spec']['ports'][0]['port']}"
    assert model == body["spec"]["model"] == "smollm2-135m"


def test_default_claims_are_read_write_once_with_the_cluster_s_default_storage_class(
    default_docs: list[dict[str, Any]],
) -> None:
    claims = {c["metadata"]["name"]: c["spec"] for c in by_kind(default_docs, "PersistentVolumeClaim")}
    assert set(claims) == {"model-cache", "kubeinfer-data"}
    for spec in claims.values():
        assert spec["accessModes"] == ["ReadWriteOnce"]
        assert "storageClassName" not in spec  # the cluster's default class (kind: local-path)


def test_claims_for_several_nodes_take_read_write_many_and_a_class(tmp_path: Path) -> None:
    rwx = {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs"}
    docs = template(CHART / "ci" / "cpu-values.yaml", values_file(tmp_path, {"modelCache": rwx, "batchData": rwx}))
    for claim in by_kind(docs, "PersistentVolumeClaim"):
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["spec"]["storageClassName"] == "nfs"


def test_model_server_is_a_model_install_that_cluster_mode_batches_find(
    default_docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = created(one(default_docs, "ModelInstall", "kubeinfer-model-server"))
    install = ModelInstall.model_validate(body)  # the model the CRD is generated from
    assert install.spec.serving is not None
    assert install.spec.source.pypi == "smollm2-135m"
    assert install.spec.quantizations == ["Q4_1"]
    gateway = one(default_docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]["containers"][0]
    args = gateway["args"]
    # The operator's BatchJob validation looks for a served ModelInstall of the batch's model in the batch's namespace
    # (the gateway's CLUSTER_NAMESPACE); the gateway's own model is the one it proxies.
    assert install.model_name == args[args.index("--model") + 1]
    assert body["metadata"]["namespace"] == env_of(gateway)["KUBEINFER_GATEWAY__CLUSTER_NAMESPACE"]
    assert not [d for d in default_docs if d["kind"] == "Deployment" and "model-server" in d["metadata"]["name"]]
    settings = operator_settings(default_docs, monkeypatch)
    server = build_server_deployment(body, install, "smollm2-135m/smollm2-135m.Q4_1.gguf", "Q4_1", 10**8, settings)
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/kubeinfer/llama-server:0.3.36"
    assert container["resources"]["requests"] == {"memory": "1Gi", "cpu": "500m"}
    assert container["resources"]["limits"] == {"memory": "1Gi"}
    assert pod["nodeSelector"] == {"kubeinfer.dev/pool": "cpu"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "model-cache"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"enabled": False}}, "the chart's model server is a ModelInstall that the operator serves"),
        ({"modelServer": {"quantize": ["Q4_1"]}}, "modelServer.quantize lists the source's own quantization Q4_1"),
        ({"modelServer": {"serveQuantization": "Q8_0"}}, "modelServer.serveQuantization Q8_0 must be"),
        ({"modelServer": {"enabled": False}}, "gateway.model is required when modelServer.enabled is false"),
        (
            {"modelServer": {"enabled": False}, "gateway": {"model": "mine"}},
            "gateway.engineUrl is required when modelServer.enabled is false",
        ),
    ],
    ids=["no-operator", "quantize-source", "serve-unknown", "no-gateway-model", "no-engine-url"],
)
def test_model_server_values_that_cannot_work_fail_at_render_time(
    tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError, match=message):
        template(CHART / "ci" / "cpu-values.yaml", values_file(tmp_path, values))


def test_model_server_spec_carries_the_values(tmp_path: Path) -> None:
    values = {
        "modelServer": {
            "quantize": ["Q8_0", "Q4_K_M"],
            "serveQuantization": "Q8_0",
            "replicas": 2,
            "threads": 2,
            "extraArgs": ["--no-warmup"],
            "idleSeconds": 600,
            "resources": {"requests": {"cpu": 2}, "limits": {"memory": None}},  # null drops a default
            "podAnnotations": {"a": "b"},
        },
        "gateway": {"model": "smollm2-135m", "engineUrl": "http://elsewhere:9000"},
    }
    docs = template(CHART / "ci" / "cpu-values.yaml", values_file(tmp_path, values))
    install = ModelInstall.model_validate(one(docs, "ModelInstall", "kubeinfer-model-server"))
    serving = install.spec.serving
    assert serving is not None
    assert install.spec.quantize == ["Q8_0", "Q4_K_M"]
    assert (serving.quantization, serving.replicas, serving.threads, serving.idle_seconds) == ("Q8_0", 2, 2, 600)
    assert (serving.resources.cpu, serving.resources.memory) == ("2", None)  # no memory: the operator's estimate
    assert serving.extra_args == ["--no-warmup"]
    assert serving.pod_annotations == {"a": "b"}
    args = one(docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--engine-url") + 1] == "http://elsewhere:9000"


def test_gateway_without_cluster_mode_has_no_api_access(tmp_path: Path) -> None:
    values = {"gateway": {"cluster": {"enabled": False}, "apiKeys": {"keys": {"k": "p"}}}}
    docs = template(values_file(tmp_path, values))
    pod = one(docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert "KUBEINFER_GATEWAY__CLUSTER_NAMESPACE" not in env_of(pod["containers"][0])
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role") if hook_of(r) is None] == ["kubeinfer-runner"]
    assert one(docs, "PersistentVolumeClaim", "kubeinfer-data")
    hook = one(docs, "Job", "kubeinfer-uninstall")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(hook)["BATCH_MARK"] == ""  # no BatchJobs without cluster mode


def test_cluster_mode_refuses_an_operator_watching_another_namespace(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"operator": {"watchNamespace": "elsewhere"}}))
    with pytest.raises(HelmError, match="operator.watchNamespace must be empty or the release namespace"):
        template(CHART / "ci" / "cpu-values.yaml", values)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_every_pod_runs_non_root_read_only_without_privilege_escalation(values: Path) -> None:
    docs = template(values)
    pods = pod_specs(docs)
    assert set(pods) == {"kubeinfer-operator", "kubeinfer-gateway", "kubeinfer-test", "kubeinfer-uninstall"}
    for pod in pods.values():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod.get("initContainers", []) + pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            writable = {m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")}
            assert "/tmp" in writable, f"{container['name']} has no writable /tmp"


def test_gpu_values_make_the_operator_serve_the_model_on_the_gpu_pool_with_the_cuda_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = template(CHART / "ci" / "gpu-values.yaml")
    body = created(one(docs, "ModelInstall", "kubeinfer-model-server"))
    install = ModelInstall.model_validate(body)
    assert install.spec.serving is not None
    assert (install.spec.serving.pool, install.spec.serving.resources.gpus) == ("gpu", 1)
    settings = operator_settings(docs, monkeypatch)
    assert settings.pool_aliases == {"gpu": "h100"}
    server = build_server_deployment(body, install, "smollm2-135m/smollm2-135m.Q4_1.gguf", "Q4_1", 10**8, settings)
    pod = server["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/kubeinfer/llama-server-cuda:0.3.36"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][container["args"].index("--n-gpu-layers") + 1] == "999"
    assert pod["nodeSelector"] == {"kubeinfer.dev/pool": "h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and `In` expressions) applied to a pod's labels."""
    exprs = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in exprs)
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        labels.get(e["key"]) in e["values"] for e in exprs
    )


def test_network_policy_admits_only_gateway_operator_runner_and_batch_worker_pods_to_model_servers(
    default_docs: list[dict[str, Any]],
) -> None:
    (policy,) = by_kind(default_docs, "NetworkPolicy")
    pod_labels = {
        name: one(default_docs, "Deployment", f"kubeinfer-{name}")["spec"]["template"]["metadata"]["labels"]
        for name in ("gateway", "operator")
    }
    benchmark_server = {**child_labels("m", "smollm2-135m/Q4_1", "server"), "kubeinfer.dev/role": "server"}
    stress_server = child_labels("m", "smollm2-135m/Q4_1", "stress-server")
    install_server = install_labels("smollm2", "server")
    chart_server = install_labels("kubeinfer-model-server", "server")
    for labels in (benchmark_server, stress_server, install_server, chart_server):
        assert selects(policy["spec"]["podSelector"], labels), labels
    assert not selects(policy["spec"]["podSelector"], pod_labels["gateway"])
    peers = [p["podSelector"] for rule in policy["spec"]["ingress"] for p in rule["from"]]

    def admitted(labels: dict[str, str]) -> bool:
        return any(selects(peer, labels) for peer in peers)

    assert admitted(pod_labels["gateway"])
    assert admitted(child_labels("m", "smollm2-135m/Q4_1", "measure"))
    assert admitted(child_labels("m", "smollm2-135m/Q4_1", "stress"))
    assert not admitted(child_labels("m", "smollm2-135m/Q4_1", "prepare"))
    assert admitted(batch_labels("batch-abc", "worker"))
    assert not admitted(batch_labels("batch-abc", "validate"))
    assert not admitted(batch_labels("batch-abc", "merge"))
    assert not admitted(install_labels("smollm2", "install"))
    assert admitted(pod_labels["operator"])
    assert not admitted(chart_server)
    assert not admitted(one(default_docs, "Pod", "kubeinfer-test")["metadata"]["labels"])
    assert not admitted({"app": "anything-else"})


def test_service_monitors_only_when_enabled_for_operator_gateway_and_model_servers(
    default_docs: list[dict[str, Any]],
) -> None:
    assert not by_kind(default_docs, "ServiceMonitor")
    docs = template(CHART / "ci" / "monitoring-values.yaml")
    monitors = {m["metadata"]["name"]: m for m in by_kind(docs, "ServiceMonitor")}
    assert set(monitors) == {"kubeinfer-operator", "kubeinfer-gateway", "kubeinfer-model-servers"}
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitors["kubeinfer-operator"]["spec"]["endpoints"][0]["port"] == "metrics"
    metrics = one(docs, "Service", "kubeinfer-operator")["spec"]["ports"][0]
    assert (metrics["name"], metrics["port"]) == ("metrics", 8000)
    servers = one(docs, "Service", "kubeinfer-model-servers")
    assert servers["spec"]["selector"] == {"kubeinfer.dev/component": "server"}
    assert servers["spec"]["clusterIP"] == "None"


def test_dashboards_configmaps_package_every_json_file_with_the_sidecar_label(tmp_path: Path) -> None:
    chart = tmp_path / "kubeinfer"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "dashboards", ignore_errors=True)
    (chart / "dashboards").mkdir()
    files = {"overview.json": {"title": "Overview", "panels": []}, "batches.json": {"title": "Batches"}}
    for name, body in files.items():
        (chart / "dashboards" / name).write_text(json.dumps(body))
    (chart / "dashboards" / "README.md").write_text("not a dashboard")
    docs = template(CHART / "ci" / "monitoring-values.yaml", chart=chart)
    maps = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    packaged = {key: json.loads(value) for cm in maps for key, value in cm["data"].items()}
    assert packaged == files
    assert all(cm["metadata"]["annotations"] == {"grafana_folder": "kubeinfer"} for cm in maps)


def test_chart_ships_a_configmap_for_each_dashboard_in_its_folder(default_docs: list[dict[str, Any]]) -> None:
    shipped = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    packaged = sorted(k for cm in by_kind(default_docs, "ConfigMap") for k in cm.get("data", {}))
    assert packaged == shipped


FREE_FORM = {"nodeSelector", "tolerations", "resources", "aliases", "keys", "labels", "annotations", "podAnnotations"}
FREE_FORM |= {"affinity", "podSecurityContext", "securityContext", "extraEnv", "extraArgs", "extraIngressFrom"}
FREE_FORM |= {"source"}  # modelServer.source: one of four shapes, checked against the CRD's


def value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths += value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_value_is_documented_in_docs_helm_md() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    doc = (REPO_ROOT / "docs" / "helm.md").read_text()
    missing = [p for p in value_paths(values) if f"`{p}`" not in doc]
    assert not missing, f"values missing from docs/helm.md: {missing}"


SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def schema_paths(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Value paths the schema names, walking `properties` as value_paths walks values.yaml."""
    paths = []
    for key, node in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in node and key not in FREE_FORM:
            paths += schema_paths(node, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_schema_describes_exactly_the_values_and_refuses_unknown_keys() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    described = set(schema_paths(SCHEMA))
    assert set(value_paths(values)) == described - {"global"}

    def closed(node: dict[str, Any], path: str) -> None:
        if "properties" in node and path.rsplit(".", 1)[-1] not in FREE_FORM - {"resources"}:
            assert node.get("additionalProperties") is False, f"{path or 'values'} accepts unknown keys"
            for key, child in node["properties"].items():
                closed(child, f"{path}.{key}" if path else key)

    closed(SCHEMA, "")


def test_schema_source_is_the_model_install_crd_s_source() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "kubeinfer.dev_modelinstalls.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    openapi_only = {"nullable", "default", "description", "x-kubernetes-validations", "additionalProperties"}

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items() if k not in openapi_only}
        return node

    source = SCHEMA["properties"]["modelServer"]["properties"]["source"]
    assert plain(source["properties"]) == plain(spec["source"]["properties"])
    assert (source["minProperties"], source["maxProperties"]) == (1, 1)  # the CRD's "exactly one" rule
    quant = SCHEMA["properties"]["modelServer"]["properties"]["quantization"]["pattern"]
    assert quant == spec["quantization"]["pattern"]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"storage": {"backend": "gcs"}}, "/storage/backend"),
        ({"modelCache": {"accessModes": ["ReadWriteSometimes"]}}, "/modelCache/accessModes/0"),
        ({"gateway": {"replicas": 2}}, "/gateway/replicas"),
        ({"gateway": {"replica": 1}}, "/gateway"),
        ({"gateway": {"port": "8080"}}, "/gateway/port"),
        ({"gateway": {"service": {"type": "Ingress"}}}, "/gateway/service/type"),
        ({"modelServer": {"quantization": "Q9_9"}}, "/modelServer/quantization"),
        (
            {"modelServer": {"source": {"pypi": "smollm2-135m", "url": {"url": "https://x/y.gguf"}}}},
            "/modelServer/source",
        ),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"gateway": {"apiKeys": {"keys": {"sk-a": "team a"}}}}, "/gateway/apiKeys/keys/sk-a"),
    ],
    ids=[
        "backend",
        "access-mode",
        "two-gateways",
        "typo",
        "port-string",
        "service-type",
        "quantization",
        "two-sources",
        "pull-policy",
        "project-space",
    ],
)
def test_bad_values_fail_with_helm_s_schema_error_naming_the_value(
    tmp_path: Path, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(HelmError) as failed:
        template(CHART / "ci" / "cpu-values.yaml", values_file(tmp_path, values))
    assert SCHEMA_ERROR in str(failed.value)
    assert f"'{where}'" in str(failed.value)


def test_helm_test_hook_sends_a_chat_and_a_batch_to_the_gateway_service_with_the_chart_s_key(
    default_docs: list[dict[str, Any]],
) -> None:
    test = one(default_docs, "Pod", "kubeinfer-test")
    assert hook_of(test) == "test"
    pod = test["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    gateway = one(default_docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == gateway["image"]
    command = container["command"]
    assert command[:2] == ["python", "-c"]
    assert command[2] == (CHART / "files" / "smoke.py").read_text()
    compile(command[2], "smoke.py", "exec")
    env = env_of(container)
    service = one(default_docs, "Service", "kubeinfer-gateway")
    assert env["GATEWAY_URL"] == f"http://kubeinfer-gateway.kubeinfer:{service['spec']['ports'][0]['port']}/v1"
    assert env["MODEL"] == gateway["args"][gateway["args"].index("--model") + 1]
    keys = Path(env["API_KEYS_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    secret_name = {v["name"]: v for v in pod["volumes"]}[mounts[str(keys.parent)]]["secret"]["secretName"]
    assert one(default_docs, "Secret", secret_name)["stringData"][keys.name].strip() == "sk-ci=ci"
    assert int(pod["activeDeadlineSeconds"]) > int(env["TIMEOUT_SECONDS"]) == 280
    assert env["BATCH_MARK"] == "kubeinfer"


def test_uninstall_hook_deletes_the_chart_s_model_install_and_test_batches_while_the_operator_runs(
    default_docs: list[dict[str, Any]],
) -> None:
    hooks = [d for d in default_docs if hook_of(d) == "pre-delete"]
    assert {(d["kind"], d["metadata"]["name"]) for d in hooks} == {
        (kind, "kubeinfer-uninstall") for kind in ("ServiceAccount", "Role", "RoleBinding", "Job")
    }
    weight = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in hooks}
    assert weight["ServiceAccount"] < weight["RoleBinding"] < weight["Job"]
    assert weight["Role"] < weight["RoleBinding"]
    job = one(hooks, "Job", "kubeinfer-uninstall")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubeinfer-uninstall"
    (container,) = pod["containers"]
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == (CHART / "files" / "pre_delete.py").read_text()
    compile(container["command"][2], "pre_delete.py", "exec")
    env = env_of(container)
    install = one(default_docs, "ModelInstall", env["MODEL_INSTALL"])
    assert env["NAMESPACE"] == install["metadata"]["namespace"] == job["metadata"]["namespace"]
    test_env = env_of(one(default_docs, "Pod", "kubeinfer-test")["spec"]["containers"][0])
    assert env["BATCH_MARK"] == test_env["BATCH_MARK"]
    rule, test_pod_rule = one(hooks, "Role", "kubeinfer-uninstall")["rules"]
    assert rule["apiGroups"] == ["kubeinfer.dev"]
    assert set(rule["resources"]) == {"modelinstalls", "batchjobs"}
    assert {"get", "list", "delete", "patch"} <= set(rule["verbs"])
    # only the `helm test` Pod, which hooks leave behind, and only to delete it
    assert env["TEST_POD"] == "kubeinfer-test"
    assert test_pod_rule == {
        "apiGroups": [""],
        "resources": ["pods"],
        "resourceNames": ["kubeinfer-test"],
        "verbs": ["delete"],
    }
    binding = one(hooks, "RoleBinding", "kubeinfer-uninstall")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeinfer-uninstall", "namespace": env["NAMESPACE"]}
    ]
