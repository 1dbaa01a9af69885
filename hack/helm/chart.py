"""Render and lint charts/kubeinfer with the helm that hack/helm/build.sh builds; used by the chart tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "kubeinfer"
BUILD_SCRIPT = REPO_ROOT / "hack" / "helm" / "build.sh"
HELM_VERSION = "v3.22.0"


class HelmError(RuntimeError):
    """helm (or its build) failed; the message carries its output."""


def helm_binary() -> Path:
    """HELM_BIN when set, else the cached build for HELM_VERSION, built first when missing (once, cold ~1 min)."""
    if explicit := os.environ.get("HELM_BIN"):
        return Path(explicit)
    cache = Path(os.environ.get("KUBEINFER_CACHE_DIR", Path.home() / ".cache" / "kubeinfer"))
    binary = cache / "helm" / HELM_VERSION / "bin" / "helm"
    if not os.access(binary, os.X_OK):
        proc = subprocess.run(
            [str(BUILD_SCRIPT)], env={**os.environ, "HELM_VERSION": HELM_VERSION}, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise HelmError(f"{BUILD_SCRIPT} failed:\n{proc.stderr[-4000:]}")
    return binary


def helm(*args: str, chart: Path = CHART) -> str:
    proc = subprocess.run([str(helm_binary()), *args, str(chart)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} {chart} exited with {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def template(
    *values_files: Path,
    release: str = "kubeinfer",
    namespace: str = "kubeinfer",
    include_crds: bool = False,
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """`helm template` of the chart, decoded (empty documents dropped)."""
    args = ["template", release, "--namespace", namespace]
    for path in values_files:
        args += ["-f", str(path)]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(helm(*args, chart=chart)) if doc]


def lint(*values_files: Path, chart: Path = CHART) -> str:
    args = ["lint", "--strict"]
    for path in values_files:
        args += ["-f", str(path)]
    return helm(*args, chart=chart)
