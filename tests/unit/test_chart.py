"""The Helm chart rendered by the real helm (hack/helm/build.sh): RBAC, CRDs, settings, security and variants.

No cluster: `helm template` output is checked against the code it must agree with (rbac.py, crds/, settings).
tests/cluster/test_chart.py installs it on the test control plane.
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
from kubeinfer.operator.rbac import GATEWAY_RULES, OPERATOR_RULES, RUNNER_RULES
from kubeinfer.resources.names import batch_labels, child_labels, install_labels
from kubeinfer.settings import Settings

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return template(CHART / "ci" / "cpu-values.yaml")


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_chart_lints_strictly_with_every_ci_values_file(values: Path | None) -> None:
    out = lint(*([values] if values else []))
    assert "0 chart(s) failed" in out


def test_cluster_role_and_roles_hold_exactly_the_rules_of_rbac_py(default_docs: list[dict[str, Any]]) -> None:
    (cluster_role,) = by_kind(default_docs, "ClusterRole")
    assert cluster_role["rules"] == OPERATOR_RULES, "run `make chart-rbac`"
    roles = {r["metadata"]["name"]: r["rules"] for r in by_kind(default_docs, "Role")}
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


def test_gateway_reads_api_keys_from_the_secret_and_talks_to_the_model_server(
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
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["namespace"] == deployment["metadata"]["namespace"] == gateway.cluster_namespace
    assert gateway.batch_workers == 2
    operator = one(default_docs, "Deployment", "kubeinfer-operator")["spec"]["template"]["spec"]["containers"][0]
    for name, value in env_of(operator).items():
        monkeypatch.setenv(name, value)
    assert Settings().operator.batch_data_claim == claim == "kubeinfer-data"
    url = container["args"][container["args"].index("--engine-url") + 1]
    service = one(default_docs, "Service", "kubeinfer-model-server")
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"


def test_gateway_without_cluster_mode_has_no_api_access(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"gateway": {"cluster": {"enabled": False}, "apiKeys": {"keys": {"k": "p"}}}}))
    docs = template(values)
    pod = one(docs, "Deployment", "kubeinfer-gateway")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert "KUBEINFER_GATEWAY__CLUSTER_NAMESPACE" not in env_of(pod["containers"][0])
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == ["kubeinfer-runner"]
    assert one(docs, "PersistentVolumeClaim", "kubeinfer-data")


def test_cluster_mode_refuses_an_operator_watching_another_namespace(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"operator": {"watchNamespace": "elsewhere"}}))
    with pytest.raises(HelmError, match="operator.watchNamespace must be empty or the release namespace"):
        template(CHART / "ci" / "cpu-values.yaml", values)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_every_pod_runs_non_root_read_only_without_privilege_escalation(values: Path) -> None:
    docs = template(values)
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in POD_KINDS]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod.get("initContainers", []) + pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            writable = {m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")}
            assert "/tmp" in writable, f"{container['name']} has no writable /tmp"


def test_gpu_values_put_the_model_server_on_the_gpu_pool_with_the_cuda_image() -> None:
    docs = template(CHART / "ci" / "gpu-values.yaml")
    pod = one(docs, "Deployment", "kubeinfer-model-server")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["image"] == "ghcr.io/kubeinfer/llama-server-cuda:0.3.36"
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--n-gpu-layers" in server["args"]
    assert pod["nodeSelector"] == {"kubeinfer.dev/pool": "h100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    operator = one(docs, "Deployment", "kubeinfer-operator")["spec"]["template"]["spec"]["containers"][0]
    assert json.loads(env_of(operator)["KUBEINFER_OPERATOR__POOL_ALIASES"]) == {"gpu": "h100"}


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
        for name in ("gateway", "operator", "model-server")
    }
    benchmark_server = {**child_labels("m", "smollm2-135m/Q4_1", "server"), "kubeinfer.dev/role": "server"}
    stress_server = child_labels("m", "smollm2-135m/Q4_1", "stress-server")
    install_server = install_labels("smollm2", "server")
    for labels in (benchmark_server, stress_server, install_server, pod_labels["model-server"]):
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
    assert not admitted(pod_labels["model-server"])
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
