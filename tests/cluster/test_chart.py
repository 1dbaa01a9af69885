"""The Helm chart against the kind cluster's API server: lint, and a server-side dry run of everything it renders.

The chart installed for real (helm upgrade --install, its pods running, `helm test`, `helm uninstall` with its
pre-delete hook) is tests/cluster/kind: the session's cluster is made by the same script as `make kind-up`. Here
the rendered objects, hooks included, go through the API server's validation and the CRDs' schemas and CEL rules
with a values file unlike kind-up's (aliased pools, explicit claims, S3 storage), so a template that renders an
invalid object for such values fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.helm.chart import lint, template
from testbed.kind import KindCluster

pytestmark = pytest.mark.timeout(600)

NAMESPACE = "kubeinfer-chart-test"
RELEASE = "kubeinfer-chart"
API_KEY = "sk-chart-test"
MODEL_INSTALL = f"{RELEASE}-model-server"


def chart_values() -> dict[str, Any]:
    """Values a user on a shared cluster would give: a pool alias, tolerations, existing volumes, S3 storage."""
    pool = {
        "nodeSelector": {"kubeinfer.dev/pool": "general"},
        "tolerations": [{"key": "kubeinfer.dev/pool", "operator": "Equal", "value": "general", "effect": "NoSchedule"}],
    }
    return {
        "pools": {"aliases": {"cpu": "general"}, "cpu": pool},
        "operator": {"pollSeconds": 0.5},
        "modelCache": {"storageClassName": "", "volumeName": "model-cache-pv", "accessModes": ["ReadWriteMany"]},
        "batchData": {"storageClassName": "", "volumeName": "batch-data-pv", "accessModes": ["ReadWriteMany"]},
        "modelServer": {"ctxSize": 1024, "parallel": 2, "threads": 1, "resources": {"requests": {"cpu": "100m"}}},
        "gateway": {"apiKeys": {"keys": {API_KEY: "chart-test"}}, "cluster": {"batchWorkers": 1}},
    }


def server_side_apply(cluster: KindCluster, docs: list[dict[str, Any]], *extra: str) -> str:
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
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values()))
    return template(values, release=RELEASE, namespace=NAMESPACE, include_crds=True)


def test_chart_lints_cleanly() -> None:
    assert "0 chart(s) failed" in lint()


def test_every_rendered_object_passes_the_api_server_s_validation(
    kube_cluster: KindCluster, rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    kinds = {o["kind"] for o in rendered}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role", "NetworkPolicy", "Secret"} <= kinds
    assert {"ModelInstall", "Pod", "Job"} <= kinds  # the gateway's model, the test Pod, the pre-delete hook
    operator = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator"))
    pod_spec = operator["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"kubeinfer.dev/pool": "general"}
    env = {e["name"]: e.get("value") for e in pod_spec["containers"][0]["env"]}
    assert env["KUBEINFER_OPERATOR__POOL_ALIASES"] == '{"cpu":"general"}'

    # The CRDs are the ones the session's cluster serves already (a dry run of them must be a no-op change).
    crds = [o for o in rendered if o["kind"] == "CustomResourceDefinition"]
    assert "serverside-applied (server dry run)" in server_side_apply(kube_cluster, crds, "--dry-run=server")
    kube_cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    try:
        objects = [o for o in rendered if o["kind"] != "CustomResourceDefinition"]
        dry = server_side_apply(kube_cluster, objects, "--dry-run=server")  # hooks too, and the CRD's CEL rules
        assert f"modelinstall.kubeinfer.dev/{MODEL_INSTALL} serverside-applied (server dry run)" in dry
        assert dry.count("serverside-applied (server dry run)") == len(objects)
        assert kube_cluster.get_json("deployments", "-n", NAMESPACE)["items"] == [], "the dry run created objects"
    finally:
        kube_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
