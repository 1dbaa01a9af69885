"""One factory that prepares a namespace on a test control plane and runs kubeinfer's processes in it.

CRDs, the operator's, runners' and gateway's RBAC objects (exactly `kubeinfer.operator.rbac`'s, so a
missing permission fails the tests), the model-cache claim and optionally the shared batch store, a
kubeconfig per ServiceAccount, the operator and a gateway as child processes, and a teardown that deletes
the namespace's resources while the operator still runs (so kopf's finalizers are removed).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeinfer.operator.rbac import gateway_objects, operator_objects, runner_objects
from testbed.controlplane import REPO_ROOT
from testbed.gateway_process import GatewayProcess
from testbed.kubectl import KubeCluster
from testbed.operator_process import OperatorProcess
from testbed.wait import wait_for

OPERATOR_SA = "kubeinfer-operator"
GATEWAY_SA = "kubeinfer-gateway"
CRDS = ("benchmarkmatrices", "modelinstalls", "batchjobs")


def apply(cluster: KubeCluster, objects: list[dict[str, Any]], namespace: str | None = None) -> None:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    cluster.kubectl(*args, stdin=yaml.safe_dump_all(objects))


def host_path_claim(claim: str, path: Path, namespace: str, size: str = "20Gi") -> list[dict[str, Any]]:
    """A hostPath PV pre-bound to PVC `claim` (ReadWriteMany) on folder `path`.

    On the tests' kind cluster `path` is under the folder mounted into the node at the same path
    (tests/cluster/conftest.py, `shared_dir`), so the pod and the test see the same files.
    """
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


def data_volume(path: Path, namespace: str) -> list[dict[str, Any]]:
    """The shared store: a hostPath PV bound to the `kubeinfer-data` claim (ReadWriteMany, as in the chart)."""
    return host_path_claim("kubeinfer-data", path, namespace, size="10Gi")


def prepare_namespace(cluster: KubeCluster, namespace: str, models_root: Path) -> None:
    cluster.kubectl("create", "namespace", namespace, check=False)
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    for crd in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.kubeinfer.dev", "--timeout=60s")
    apply(cluster, operator_objects(namespace, OPERATOR_SA))
    apply(cluster, runner_objects(namespace))
    apply(cluster, gateway_objects(namespace, GATEWAY_SA))
    apply(cluster, model_cache_volume(models_root, namespace))


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, account: str, path: Path) -> Path:
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


@contextmanager
def scratch_namespace(cluster: KubeCluster, prefix: str) -> Iterator[str]:
    """A fresh namespace `prefix-<random>` with its default ServiceAccount; deleted (not waited for) afterwards.

    Deleting it stops whatever a test left running there.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        what=f"default ServiceAccount in {name}",
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class NamespaceEnv:
    """A prepared namespace and the processes started in it; `namespace_env` stops them."""

    cluster: KubeCluster
    namespace: str
    workdir: Path
    operator: OperatorProcess | None = None
    gateway: GatewayProcess | None = None
    _kubeconfigs: dict[str, Path] = field(default_factory=dict)

    def kubeconfig(self, account: str) -> Path:
        """A kubeconfig authenticating as ServiceAccount `account` of the namespace (made once)."""
        if account not in self._kubeconfigs:
            path = self.workdir / f"{account}-kubeconfig"
            self._kubeconfigs[account] = service_account_kubeconfig(self.cluster, self.namespace, account, path)
        return self._kubeconfigs[account]

    def apply(self, objects: list[dict[str, Any]]) -> None:
        apply(self.cluster, objects, self.namespace)

    def operator_process(self, log: Path, env: Mapping[str, str] | None = None) -> OperatorProcess:
        """An operator (not started) for this namespace as its ServiceAccount; the caller stops it."""
        return OperatorProcess(self.kubeconfig(OPERATOR_SA), self.namespace, log, env)

    def start_operator(self, env: Mapping[str, str] | None = None) -> OperatorProcess:
        """The namespace's operator, stopped by the factory after the clean-up."""
        self.operator = self.operator_process(self.workdir / "operator.log", env).start()
        return self.operator

    def start_gateway(
        self,
        engine_url: str,
        env: Mapping[str, str] | None = None,
        *,
        cluster_mode: bool = True,
        data_dir: Path | None = None,
    ) -> GatewayProcess:
        """A gateway process on `engine_url`; in cluster mode it runs as the gateway's ServiceAccount."""
        extra = dict(env or {})
        if cluster_mode:
            extra = {
                "KUBEINFER_GATEWAY__CLUSTER_NAMESPACE": self.namespace,
                "KUBECONFIG": str(self.kubeconfig(GATEWAY_SA)),
                **extra,
            }
        data = data_dir or self.workdir / "gateway-data"
        log = self.workdir / "gateway.log"
        self.gateway = GatewayProcess(data, engine_url, log, env=extra, shared_with_pods=cluster_mode).start()
        return self.gateway


@contextmanager
def namespace_env(
    cluster: KubeCluster,
    namespace: str,
    models_root: Path,
    workdir: Path,
    *,
    operator: bool = True,
    operator_env: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
    clean_up: Sequence[str] = (),
    release_finalizers: bool = False,
) -> Iterator[NamespaceEnv]:
    """A namespace ready for the operator (started unless `operator` is False) and, later, a gateway.

    `data_dir` binds the `kubeinfer-data` claim to it. On exit the gateway stops, then every object of the kinds
    in `clean_up` (e.g. "batchjobs") is deleted, all kinds at once, while the operator still runs, then the
    operator stops. With `release_finalizers` the operator stops first and the objects are deleted with their
    finalizers dropped and their children with them (`release_and_delete`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_namespace(cluster, namespace, models_root)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        apply(cluster, data_volume(data_dir, namespace))
    env = NamespaceEnv(cluster, namespace, workdir)
    try:
        if operator:
            env.start_operator(operator_env)
        yield env
    finally:
        if env.gateway is not None:
            env.gateway.stop()
        if env.operator is not None and env.operator.running and clean_up and not release_finalizers:
            delete_all(cluster, namespace, clean_up)
        if env.operator is not None:
            env.operator.stop()
        if clean_up and release_finalizers:
            release_and_delete(cluster, namespace, clean_up)


def release_and_delete(cluster: KubeCluster, namespace: str, kinds: Sequence[str]) -> None:
    """Delete every object of `kinds` in `namespace` with no operator running: finalizers dropped, then deleted in
    the foreground, so their Jobs, Deployments and pods are gone before the call returns.

    For a module's teardown where the operator's delete handlers are tested elsewhere and would only cost time:
    a BatchJob's runs a clean-up Job (a pod) to remove its shard logs (test_batch_cluster.py deletes one and
    checks), a ModelInstall's cancels a running download (test_model_install.py).
    """
    names = cluster.kubectl("get", ",".join(kinds), "-n", namespace, "-o", "name", check=False).stdout.split()
    for name in names:
        cluster.kubectl(
            "patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )
    delete_all(cluster, namespace, kinds, "--cascade=foreground")


def delete_all(cluster: KubeCluster, namespace: str, kinds: Sequence[str], *options: str) -> None:
    """Every object of `kinds` in one kubectl call, waited for: an operator still running finalizes them side by
    side."""
    cluster.kubectl(
        "delete",
        ",".join(kinds),
        "--all",
        "-n",
        namespace,
        *options,
        "--wait=true",
        "--timeout=180s",
        timeout=200,
        check=False,
    )
