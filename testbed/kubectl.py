"""kubectl against one cluster's kubeconfig, for the testbed's clusters (the kwokctl control plane and kind)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    args: Sequence[str],
    error: type[Exception],
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl; with check, a failure raises `error` naming the command and kubectl's own message."""
    proc = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise error(f"kubectl {' '.join(args)} exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc


class KubeCluster(Protocol):
    """What tests and the namespace factory need of a cluster: kind's (`testbed.kind`) or kwokctl's
    (`testbed.controlplane`, the operator scale benchmark)."""

    @property
    def kubeconfig(self) -> Path: ...

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...

    def get_json(self, *args: str) -> Any: ...
