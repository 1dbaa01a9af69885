"""A real kind cluster with kubeinfer installed from its chart, driven through `hack/kind/cluster.sh` (docs/kind.md).

The same script as `make kind-up`: kind on Docker or podman, the node image built with no registry, the images
built by `make images` and loaded into the node, the chart installed and `helm test`ed. Pods run as containers
under the node's kubelet and containerd; Services, DNS, probes and memory limits are the real ones.
The cluster gets its own name, gateway port and state folder, so it never touches a user's `make kind-up` cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.kubectl import run_kubectl

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO_ROOT / "hack" / "kind" / "cluster.sh"
K8S_VERSION = "v1.35.4"
HELM_VERSION = "v3.22.0"
NAMESPACE = "kubeinfer"


class KindError(RuntimeError):
    """`hack/kind/cluster.sh` or kubectl failed; the message carries the end of its output."""


def cache_dir() -> Path:
    return Path(os.environ.get("KUBEINFER_CACHE_DIR", Path.home() / ".cache" / "kubeinfer"))


def image_specs() -> str:
    """The `TARGET=TAG@DOCKERFILE` specs `make images` passes, read from `make -n` so tags never drift."""
    out = subprocess.run(
        ["make", "-s", "-n", "images"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return " ".join(out[1:])


@dataclass(frozen=True)
class KindOptions:
    """What a test cluster adds to `make kind-up`'s defaults (each maps to one of cluster.sh's variables).

    `node_pool` labels the real node (the chart's and the tests' `cpu` pool is aliased to it, so kwok's simulated
    `cpu` nodes never receive a pod meant to run); `skip_helm` leaves the chart out (the perf scripts run their
    own operator and gateway); `helm_test` runs `helm test` once the chart is up (the tests run it themselves);
    `sim_cpu_nodes`/`sim_gpu_nodes` are kwok's simulated pools; `host_route` makes pod IPs reachable from this
    machine, where the tests' operator and gateway processes run; `shared_dirs` are mounted into the node at the
    same path, so a hostPath volume names the same folder here and in a pod; `pod_subnet` keeps that route apart
    from a user's own kind cluster (10.244.0.0/16); `workers` adds real worker nodes (a /24 of the pod subnet each
    with the offline node image: hack/kind/bridge.sh).
    """

    node_pool: str = "cpu"
    skip_helm: bool = False
    helm_test: bool = True
    sim_cpu_nodes: int = 0
    sim_gpu_nodes: int = 0
    host_route: bool = False
    shared_dirs: Sequence[Path] = ()
    pod_subnet: str = "10.244.0.0/16"
    workers: int = 0

    def env(self) -> dict[str, str]:
        return {
            "KIND_NODE_POOL": self.node_pool,
            "KIND_SKIP_HELM": "1" if self.skip_helm else "0",
            "KIND_HELM_TEST": "1" if self.helm_test else "0",
            "KIND_SIM_CPU_NODES": str(self.sim_cpu_nodes),
            "KIND_SIM_GPU_NODES": str(self.sim_gpu_nodes),
            "KIND_HOST_ROUTE": "1" if self.host_route else "0",
            "KIND_SHARED_DIRS": " ".join(str(d) for d in self.shared_dirs),
            "KIND_POD_SUBNET": self.pod_subnet,
            "KIND_WORKERS": str(self.workers),
        }


@dataclass(frozen=True)
class KindCluster:
    """A running kind cluster: its kubeconfig and the gateway address `kind-up` printed.

    It answers the same calls as testbed.controlplane.Cluster (`kubeconfig`, `kubectl`, `get_json`), so tests and
    the namespace factory take either.
    """

    name: str
    state_dir: Path
    exports: dict[str, str]
    options: KindOptions = field(default_factory=KindOptions)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.exports["KUBECONFIG"])

    @property
    def base_url(self) -> str:
        return self.exports["OPENAI_BASE_URL"]

    @property
    def api_key(self) -> str:
        return self.exports["OPENAI_API_KEY"]

    @property
    def bin_dir(self) -> Path:
        """kubectl and the other Kubernetes binaries (hack/controlplane/build.sh)."""
        return cache_dir() / "k8s" / K8S_VERSION / "bin"

    @property
    def host_address(self) -> str:
        """This machine's address on the nodes' container network: a server a test starts for pods to reach
        (the loopback Hub, S3) listens there, on this machine only."""
        return (self.state_dir / "host-address").read_text().strip()

    @property
    def node_name(self) -> str:
        """The (first) real node: kind names it after the cluster."""
        return f"{self.name}-control-plane"

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.bin_dir / "kubectl", self.kubeconfig, args, KindError, stdin, check, timeout)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def _script_env(name: str, state_dir: Path, gateway_port: int, options: KindOptions) -> dict[str, str]:
    helm = cache_dir() / "helm" / HELM_VERSION / "bin" / "helm"
    return {
        **os.environ,
        **options.env(),
        "KIND_CLUSTER": name,
        "KIND_STATE_DIR": str(state_dir),
        "KIND_GATEWAY_PORT": str(gateway_port),
        "KUBEINFER_OFFLINE": "1",
        "HELM": os.environ.get("HELM_BIN", str(helm)),
        "IMAGES": image_specs(),
    }


def _run(action: str, env: dict[str, str], log: Path, timeout: float) -> str:
    with log.open("a") as err:
        proc = subprocess.run(
            [str(CLUSTER_SCRIPT), action],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise KindError(f"cluster.sh {action} exited with {proc.returncode}:\n{tail}")
    return proc.stdout


def parse_exports(stdout: str) -> dict[str, str]:
    """The `export NAME=VALUE` lines `kind-up` ends with."""
    exports = {}
    for line in stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            exports[key] = value
    return exports


def start(
    name: str,
    state_dir: Path,
    gateway_port: int,
    log: Path,
    options: KindOptions | None = None,
    timeout: float = 3600,
) -> KindCluster:
    """Create (or reuse) the cluster and install the chart; raises KindError with the script's output."""
    options = options or KindOptions()
    env = _script_env(name, state_dir, gateway_port, options)
    try:
        exports = parse_exports(_run("up", env, log, timeout))
    except BaseException:
        stop(name, state_dir, gateway_port, log, options)
        raise
    return KindCluster(name=name, state_dir=state_dir, exports=exports, options=options)


def stop(
    name: str, state_dir: Path, gateway_port: int, log: Path, options: KindOptions | None = None, timeout: float = 300
) -> None:
    """Delete the cluster, its host route and its state folder (the image and node-image caches stay)."""
    _run("down", _script_env(name, state_dir, gateway_port, options or KindOptions()), log, timeout)


# --- the test cluster: what tests/cluster and perf/ add to `make kind-up` -------------------------------------------

#: The uid the images run as: folders a pod writes to are given to it.
POD_UID = 10001
#: Apart from 10.244.0.0/16, the pod subnet of a user's `make kind-up` cluster, since the host route is global.
TEST_POD_SUBNET = "10.245.0.0/16"


def cluster_options(shared_dir: Path, skip_helm: bool = False) -> KindOptions:
    """The tests' cluster: the real node in pool `local` (the tests' and the chart's `cpu` pool alias), kwok's
    two CPU and two GPU nodes, pod IPs reachable from this machine and `shared_dir` mounted at the same path.
    `helm test` is left to tests/cluster/kind/test_kind_zz_uninstall.py, which runs it on the same release."""
    return KindOptions(
        node_pool="local",
        skip_helm=skip_helm,
        helm_test=False,
        sim_cpu_nodes=2,
        sim_gpu_nodes=2,
        host_route=True,
        shared_dirs=(shared_dir,),
        pod_subnet=TEST_POD_SUBNET,
    )


def pod_writable(path: Path) -> Path:
    """`path` (created) owned by the images' user, so a pod can write where a test or script reads."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, POD_UID, POD_UID)
    return path


def seed_models(source_root: Path, target_root: Path, names: Sequence[str] = ("smollm2-135m",)) -> Path:
    """A model cache for pods: copies of `names`' cached files from `source_root` (left untouched), owned by the
    images' user, since pods write next to them (downloads, quantizations)."""
    pod_writable(target_root)
    for name in names:
        source = source_root / name
        if not source.is_dir():
            continue
        target = pod_writable(target_root / name)
        for item in source.iterdir():
            if item.is_file() and not item.name.endswith(".lock") and not (target / item.name).exists():
                shutil.copy2(item, target / item.name)
                os.chown(target / item.name, POD_UID, POD_UID)
    return target_root


@contextmanager
def running_test_cluster(
    name: str,
    shared_dir: Path,
    state_dir: Path,
    gateway_port: int,
    log: Path,
    keep: bool = False,
    skip_helm: bool = False,
) -> Iterator[KindCluster]:
    """The tests' kind cluster (`cluster_options`), deleted with its host route afterwards unless `keep`.

    One at a time on a machine: they share the pod subnet that the host route sends to the node.
    """
    options = cluster_options(shared_dir, skip_helm)
    if not keep:
        # A cluster of this name left by a killed session has another shared folder mounted: start afresh.
        stop(name, state_dir, gateway_port, log, options)
    cluster = start(name, state_dir, gateway_port, log, options)
    try:
        yield cluster
    finally:
        if not keep:
            stop(name, state_dir, gateway_port, log, options)


@contextmanager
def bench_cluster(
    name: str, work: Path, gateway_port: int, models_source: Path
) -> Iterator[tuple[KindCluster, Path, Path]]:
    """A test cluster without the chart for perf scripts, all under `work` (made readable for the pods): the
    cluster, its seeded model cache and its batch store."""
    work.chmod(0o755)
    models = seed_models(models_source, work / "models")
    data = pod_writable(work / "batch-data")
    with running_test_cluster(
        name, work, work / "kind-state", gateway_port, work / "kind.log", skip_helm=True
    ) as cluster:
        yield cluster, models, data
