"""Pure builders of what a BenchmarkMatrix cell needs: a model server pod and the runner Jobs of its steps.

Each returns a plain dict ready for the API, so it is unit-tested without a cluster.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

from kubeinfer.engines.llamacpp_server import ServerConfig, server_args
from kubeinfer.kube.objects import owner_reference
from kubeinfer.operator.builders.common import (
    ALL_INTERFACES,
    CACHE_VOLUME,
    COLD_START_PORT,
    MEMORY_PORT,
    MODELS_MOUNT,
    POD_NAMESPACE_ENV,
    SERVER_PORT,
    cache_volume,
    container_security,
    pool_placement,
    step_command,
    supervisor_command,
)
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix
from kubeinfer.resources.names import ROLE_LABEL, child_labels, child_name, result_name
from kubeinfer.settings import OperatorSettings


def server_container(
    matrix: BenchmarkMatrix, model_rel_path: str, ctx_size: int, estimated_bytes: int, settings: OperatorSettings
) -> dict[str, Any]:
    spec = matrix.spec
    model_path = str(PurePosixPath(MODELS_MOUNT) / model_rel_path)
    gpus = spec.placement.gpus or (1 if spec.placement.pool == "gpu" else 0)
    alias = model_rel_path.split("/", 1)[0]
    if spec.engine.type == "vllm":
        image, command = settings.vllm_image, ["vllm", "serve", model_path]
        args = [
            "--host",
            ALL_INTERFACES,
            "--port",
            str(SERVER_PORT),
            "--max-model-len",
            str(ctx_size),
            "--served-model-name",
            alias,
            *spec.engine.extra_args,
        ]
    else:
        image = settings.engine_gpu_image if gpus else settings.engine_image
        config = ServerConfig(
            model_path=Path(model_path),
            ctx_size=ctx_size,
            parallel=spec.engine.parallel,
            threads=spec.engine.threads,
            gpu_layers=spec.engine.gpu_layers or (999 if gpus else 0),
            alias=alias,
            extra_args=spec.engine.extra_args,
            host=ALL_INTERFACES,
        )
        timed = [
            *("--health-url", f"http://127.0.0.1:{SERVER_PORT}/health"),
            *("--cold-load", model_path, "--cold-port", str(COLD_START_PORT)),
            *("--cold-timeout", str(math.ceil(spec.limits.max_load_time_seconds))),
        ]
        command, args = [*supervisor_command(*timed), "llama-server"], server_args(config, SERVER_PORT)
    requests: dict[str, str] = {"memory": str(estimated_bytes), "cpu": str(spec.engine.threads or 1)}
    limits: dict[str, str] = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "name": "server",
        "image": image,
        "command": command,
        "args": args,
        "ports": [
            {"name": "http", "containerPort": SERVER_PORT},
            *([{"name": "memory", "containerPort": MEMORY_PORT}] if measures_memory(matrix) else []),
        ],
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": SERVER_PORT},
            "periodSeconds": 1,
            "failureThreshold": max(1, math.ceil(spec.limits.max_load_time_seconds)),
        },
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": True}],
        "securityContext": container_security(),
    }


def measures_memory(matrix: BenchmarkMatrix) -> bool:
    """llama.cpp images carry the supervisor; vLLM's is upstream's, so its cells report no memory."""
    return matrix.spec.engine.type != "vllm"


def memory_url(matrix: BenchmarkMatrix, pod_ip: str) -> str | None:
    return f"http://{pod_ip}:{MEMORY_PORT}/memory" if measures_memory(matrix) else None


def build_server_pod(
    matrix_body: dict[str, Any],
    matrix: BenchmarkMatrix,
    cell_key: str,
    model_rel_path: str,
    ctx_size: int,
    estimated_bytes: int,
    settings: OperatorSettings,
    component: str = "server",
) -> dict[str, Any]:
    """The model server for one cell: never restarted, since a crash is a load failure to record.

    The stress stage uses its own `component` name, so it never races the measuring server's deletion.
    """
    name = child_name(matrix.metadata.name, cell_key, component)
    placement = pool_placement(matrix.spec.placement.pool, settings, matrix.spec.placement.gpus)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {**child_labels(matrix.metadata.name, cell_key, component), ROLE_LABEL: "server"},
            "ownerReferences": [owner_reference(matrix_body)],
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [server_container(matrix, model_rel_path, ctx_size, estimated_bytes, settings)],
            "volumes": [cache_volume(settings, read_only=True)],
            **placement,
        },
    }


def build_runner_job(
    matrix_body: dict[str, Any],
    matrix: BenchmarkMatrix,
    cell_key: str,
    step: str,
    extra_args: list[str],
    settings: OperatorSettings,
    component: str | None = None,
) -> dict[str, Any]:
    """A Job running `kubeinfer step <step>` for one cell; it writes its result to a ConfigMap it names.

    `component` (default: the step) names the Job, so one step can run twice for a cell (measure, stress).
    """
    component = component or step
    name = child_name(matrix.metadata.name, cell_key, component)
    labels = child_labels(matrix.metadata.name, cell_key, component)
    owner = owner_reference(matrix_body)
    env = [
        {
            "name": "KUBEINFER_MATRIX",
            "value": json.dumps(matrix.model_dump(mode="json", by_alias=True, exclude={"status"})),
        },
        {"name": "KUBEINFER_MODEL_DIR", "value": MODELS_MOUNT},
        {"name": "KUBEINFER_OWNER", "value": json.dumps(owner)},
        POD_NAMESPACE_ENV,
    ]
    container = {
        "name": "runner",
        "image": settings.runner_image,
        "command": [*step_command(step), "--cell", cell_key, "--result", result_name(name), *extra_args],
        "env": env,
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": step != "prepare"}],
        "securityContext": container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": int(settings.job_timeout_seconds),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.runner_service_account,
                    "containers": [container],
                    "volumes": [cache_volume(settings, read_only=step != "prepare")],
                    **pool_placement(settings.runner_pool, settings),
                },
            },
        },
    }
