"""What the builders of every resource share: ports, the model-cache volume, pool placement, pod hardening."""

from __future__ import annotations

from typing import Any

from kubeinfer.settings import OperatorSettings

MODELS_MOUNT = "/models"
#: A pod's server must answer on its pod IP; the pod network, not the bind address, limits who reaches it.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
SERVER_PORT = 8080
#: `kubeinfer engine serve` answers GET /memory here with the llama-server child's memory.
MEMORY_PORT = 8081
#: A matrix server's cold start listens here, inside its pod only, so the pod is not Ready before the real start.
COLD_START_PORT = 8090
CACHE_VOLUME = "model-cache"
#: Every pod step learns its namespace from the downward API (it writes its result ConfigMaps there).
POD_NAMESPACE_ENV = {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}


def pool_placement(pool: str, settings: OperatorSettings, gpus: int = 0) -> dict[str, Any]:
    """nodeSelector and tolerations for a logical pool; GPU pods also tolerate the nvidia.com/gpu taint."""
    value = settings.pool_aliases.get(pool, pool)
    tolerations: list[dict[str, str]] = [
        {"key": settings.pool_label, "operator": "Equal", "value": value, "effect": "NoSchedule"}
    ]
    if pool == "gpu" or gpus:
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    return {"nodeSelector": {settings.pool_label: value}, "tolerations": tolerations}


def cache_volume(settings: OperatorSettings, read_only: bool) -> dict[str, Any]:
    return {
        "name": CACHE_VOLUME,
        "persistentVolumeClaim": {"claimName": settings.model_cache_claim, "readOnly": read_only},
    }


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def supervisor_command(*options: str) -> list[str]:
    """llama-server runs as the child of `kubeinfer engine serve`, which serves its memory to the measure Job.

    The measure Job runs in its own pod and cannot read the server's /proc; the supervisor in the server's
    container can. It forwards SIGTERM and exits with llama-server's exit code, so the pod still reports
    the engine's own outcome. `options` go to `engine serve` (a matrix's servers time their loads).
    """
    serve = ["kubeinfer", "engine", "serve", "--memory-port", str(MEMORY_PORT), "--memory-host", ALL_INTERFACES]
    return [*serve, *options, "--"]


def step_command(step: str) -> list[str]:
    """The command of a pod that runs one of the operator's steps (kubeinfer.steps)."""
    return ["kubeinfer", "step", step]
