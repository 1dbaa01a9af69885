"""Set up a namespace for the operator on the test control plane and run the operator as its ServiceAccount."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kubeinfer.operator.rbac import gateway_objects, operator_objects, runner_objects
from tests.integration.cluster import REPO_ROOT, Cluster

OPERATOR_SA = "kubeinfer-operator"
GATEWAY_SA = "kubeinfer-gateway"


def apply(cluster: Cluster, objects: list[dict[str, Any]], namespace: str | None = None) -> None:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    cluster.kubectl(*args, stdin=yaml.safe_dump_all(objects))


def host_path_claim(claim: str, path: Path, namespace: str, size: str = "20Gi") -> list[dict[str, Any]]:
    """A hostPath PV pre-bound to PVC `claim` (ReadWriteMany); the kubelet stand-in maps it to `path`."""
    pv_name = f"{claim}-{namespace}"
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(path)},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": size}},
            },
        },
    ]


def model_cache_volume(models_root: Path, namespace: str) -> list[dict[str, Any]]:
    return host_path_claim("model-cache", models_root, namespace)


def prepare_namespace(cluster: Cluster, namespace: str, models_root: Path) -> None:
    cluster.kubectl("create", "namespace", namespace, check=False)
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/benchmarkmatrices.kubeinfer.dev", "--timeout=60s")
    apply(cluster, operator_objects(namespace, OPERATOR_SA))
    apply(cluster, runner_objects(namespace))
    apply(cluster, gateway_objects(namespace, GATEWAY_SA))
    apply(cluster, model_cache_volume(models_root, namespace))


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as `account`, so RBAC gaps fail the tests for real."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=6h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = admin["clusters"][0]["cluster"]
    cluster_entry: dict[str, Any] = {"server": current["server"]}
    if "certificate-authority-data" in current:
        cluster_entry["certificate-authority-data"] = current["certificate-authority-data"]
    elif "certificate-authority" in current:
        ca = Path(current["certificate-authority"]).read_bytes()
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    else:
        cluster_entry["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster_entry}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": account, "namespace": namespace}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config))
    return path


def start_operator(
    kubeconfig: Path, namespace: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBEINFER_OPERATOR__POOL_ALIASES": json.dumps({"cpu": "local"}),
        "KUBEINFER_OPERATOR__POLL_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kubeinfer.cli.main", "operator", "run", "--namespace", namespace],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
