"""The kwokctl control plane of hack/controlplane, started and stopped from Python (test fixtures, perf scripts)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.kubectl import run_kubectl

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTROLPLANE = REPO_ROOT / "hack" / "controlplane"
K8S_VERSION = "v1.35.4"


class ClusterError(RuntimeError):
    """A control-plane script failed; the message carries the end of its output."""


def cache_dir() -> Path:
    return Path(os.environ.get("KUBEINFER_CACHE_DIR", Path.home() / ".cache" / "kubeinfer"))


def bin_dir() -> Path:
    """Where hack/controlplane/build.sh puts etcd, the Kubernetes binaries, kwok and kwokctl."""
    return cache_dir() / "k8s" / K8S_VERSION / "bin"


def _run_script(script: str, env: Mapping[str, str], timeout: float) -> str:
    """Run one of hack/controlplane/*.sh; raise ClusterError with its output when it fails."""
    proc = subprocess.run(
        [str(CONTROLPLANE / script)],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ClusterError(f"{script} exited with {proc.returncode}:\n{tail}")
    return proc.stderr


def build_binaries(timeout: float = 3600) -> Path:
    """Build the control-plane binaries when missing (returns at once when they are cached)."""
    _run_script("build.sh", {}, timeout)
    return bin_dir()


@dataclass
class Cluster:
    """A running kwokctl cluster: its kubeconfig, the binaries that serve it and how to stop it."""

    name: str
    workdir: Path
    bin_dir: Path = field(default_factory=bin_dir)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        """Environment for hack/controlplane scripts and for kubectl against this cluster."""
        return {
            "KUBEINFER_CLUSTER_NAME": self.name,
            "KUBEINFER_CLUSTER_DIR": str(self.workdir),
            "KWOK_WORKDIR": str(self.workdir / "kwok"),
            "KUBECONFIG": str(self.kubeconfig),
        }

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl; with check, a failure raises ClusterError naming the command."""
        return run_kubectl(self.bin_dir / "kubectl", self.kubeconfig, args, ClusterError, stdin, check, timeout)

    def get_json(self, *args: str) -> Any:
        """`kubectl get ARGS -o json`, decoded."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def stop(self, timeout: float = 120) -> None:
        """Stop every component and delete the cluster's state (etcd data, certificates, logs)."""
        _run_script("down.sh", self.env, timeout)


def start_cluster(name: str, workdir: Path, timeout: float = 3600) -> Cluster:
    """Start a cluster named `name` whose state and kubeconfig live under `workdir` (built first if needed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(name=name, workdir=workdir.resolve())
    try:
        _run_script("up.sh", cluster.env, timeout)
    except BaseException:
        # A half-started cluster would leave etcd and the apiserver running after the session.
        try:
            cluster.stop()
        except ClusterError:
            pass
        raise
    return cluster


@contextmanager
def running_cluster(name: str, workdir: Path) -> Iterator[Cluster]:
    cluster = start_cluster(name, workdir)
    try:
        yield cluster
    finally:
        cluster.stop()
