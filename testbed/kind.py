"""A real kind cluster with kubeinfer installed from its chart, driven through `hack/kind/cluster.sh` (docs/kind.md).

The same script as `make kind-up`: kind on Docker or podman, the node image built with no registry, the images
built by `make images` and loaded into the node, the chart installed and `helm test`ed. Pods run as containers
under the node's kubelet and containerd; Services, DNS, probes and memory limits are the real ones.
The cluster gets its own name, gateway port and state folder, so it never touches a user's `make kind-up` cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
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
class KindCluster:
    """A running kind cluster: its kubeconfig and the gateway address `kind-up` printed."""

    name: str
    state_dir: Path
    exports: dict[str, str]

    @property
    def kubeconfig(self) -> Path:
        return Path(self.exports["KUBECONFIG"])

    @property
    def base_url(self) -> str:
        return self.exports["OPENAI_BASE_URL"]

    @property
    def api_key(self) -> str:
        return self.exports["OPENAI_API_KEY"]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        kubectl = cache_dir() / "k8s" / K8S_VERSION / "bin" / "kubectl"
        return run_kubectl(kubectl, self.kubeconfig, args, KindError, stdin, check, timeout)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def _script_env(name: str, state_dir: Path, gateway_port: int) -> dict[str, str]:
    helm = cache_dir() / "helm" / HELM_VERSION / "bin" / "helm"
    return {
        **os.environ,
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


def start(name: str, state_dir: Path, gateway_port: int, log: Path, timeout: float = 3600) -> KindCluster:
    """Create (or reuse) the cluster and install the chart; raises KindError with the script's output."""
    env = _script_env(name, state_dir, gateway_port)
    try:
        exports = parse_exports(_run("up", env, log, timeout))
    except BaseException:
        stop(name, state_dir, gateway_port, log)
        raise
    return KindCluster(name=name, state_dir=state_dir, exports=exports)


def stop(name: str, state_dir: Path, gateway_port: int, log: Path, timeout: float = 300) -> None:
    """Delete the cluster and its state folder (the image and node-image caches stay)."""
    _run("down", _script_env(name, state_dir, gateway_port), log, timeout)
