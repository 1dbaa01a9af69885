"""Pure builders of what a ModelInstall needs: the install and clean-up Jobs, the server Deployment and Service.

Each returns a plain dict for the API, so it is unit-tested without a cluster.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

from kubeinfer.engines.llamacpp_server import ServerConfig, server_args
from kubeinfer.kube.objects import owner_reference
from kubeinfer.models.install import SOURCE_MOUNT
from kubeinfer.operator.builders.common import (
    ALL_INTERFACES,
    CACHE_VOLUME,
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
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.resources.names import (
    QUANT_LABEL,
    deployment_name,
    install_job_name,
    install_labels,
    progress_name,
    result_name,
    service_name,
    slug,
)
from kubeinfer.settings import OperatorSettings

SERVER_GRACE_SECONDS = 10
SOURCE_VOLUME = "source"


def _job(
    body: dict[str, Any],
    name: str,
    component: str,
    command: list[str],
    env: list[dict[str, Any]],
    settings: OperatorSettings,
    backoff_limit: int,
    owned: bool = True,
    extra_volumes: list[dict[str, Any]] | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    labels = install_labels(body["metadata"]["name"], component)
    container = {
        "name": component,
        "image": settings.runner_image,
        "command": command,
        "env": [
            {"name": "KUBEINFER_MODEL_DIR", "value": MODELS_MOUNT},
            POD_NAMESPACE_ENV,
            *env,
        ],
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": MODELS_MOUNT}, *(extra_mounts or [])],
        "securityContext": container_security(),
    }
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if owned:
        metadata["ownerReferences"] = [owner_reference(body)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": int(settings.job_timeout_seconds),
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.runner_service_account,
                    "containers": [container],
                    "volumes": [cache_volume(settings, read_only=False), *(extra_volumes or [])],
                    **pool_placement(settings.runner_pool, settings),
                },
            },
        },
    }


def build_install_job(body: dict[str, Any], install: ModelInstall, settings: OperatorSettings) -> dict[str, Any]:
    """`kubeinfer step install` in a Job; a killed pod's successor resumes the partial download."""
    name = install_job_name(install.metadata.name, body["metadata"].get("generation") or 1)
    resource = install.model_dump(mode="json", by_alias=True, exclude={"status"}, exclude_none=True)
    env: list[dict[str, Any]] = [
        {"name": "KUBEINFER_MODEL_INSTALL", "value": json.dumps(resource)},
        {"name": "KUBEINFER_OWNER", "value": json.dumps(owner_reference(body))},
    ]
    if settings.hf_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": settings.hf_endpoint})
    if (hf := install.spec.source.hf) is not None and hf.token_secret is not None:
        secret = {"name": hf.token_secret.name, "key": hf.token_secret.key}
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": secret}})
    volumes, mounts = [], []
    if (pvc := install.spec.source.pvc) is not None:
        volumes = [{"name": SOURCE_VOLUME, "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": True}}]
        mounts = [{"name": SOURCE_VOLUME, "mountPath": SOURCE_MOUNT, "readOnly": True}]
    command = [*step_command("install"), "--result", result_name(name), "--progress", progress_name(name)]
    return _job(body, name, "install", command, env, settings, 6, extra_volumes=volumes, extra_mounts=mounts)


def build_clean_job(body: dict[str, Any], install: ModelInstall, settings: OperatorSettings) -> dict[str, Any]:
    """Removes a deleted install's partial downloads; not owned, since its owner is on its way out."""
    name = f"{slug(install.metadata.name)[:40]}-clean-{body['metadata']['uid'][:8]}"
    command = ["kubeinfer", "models", "clean-partials", install.model_name]
    return _job(body, name, "clean", command, [], settings, 2, owned=False)


def build_server_deployment(
    body: dict[str, Any],
    install: ModelInstall,
    model_rel_path: str,
    quantization: str,
    memory_request_bytes: int,
    settings: OperatorSettings,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The model server for one quantization; changing it (OOM fallback) rolls out a new ReplicaSet.

    `replicas` overrides the spec's (0 while the model idles).
    """
    serving = install.spec.serving
    assert serving is not None
    name = install.metadata.name
    labels = install_labels(name, "server")
    model_path = str(PurePosixPath(MODELS_MOUNT) / model_rel_path)
    gpus = serving.resources.gpus or (1 if serving.pool == "gpu" else 0)
    if serving.engine == "vllm":
        image, command = settings.vllm_image, ["vllm", "serve", model_path]
        args = ["--host", ALL_INTERFACES, "--port", str(SERVER_PORT), "--max-model-len", str(serving.ctx_size)]
        args += ["--served-model-name", install.model_name, *serving.extra_args]
    else:
        image = settings.engine_gpu_image if gpus else settings.engine_image
        config = ServerConfig(
            model_path=Path(model_path),
            ctx_size=serving.ctx_size,
            parallel=serving.parallel,
            threads=serving.threads,
            gpu_layers=999 if gpus else 0,
            alias=install.model_name,
            extra_args=serving.extra_args,
            host=ALL_INTERFACES,
        )
        # under the memory supervisor, as a matrix's server: `kubeinfer workers status` reads its /memory
        command, args = [*supervisor_command(), "llama-server"], server_args(config, SERVER_PORT)
    requests = {"memory": serving.resources.memory or str(memory_request_bytes)}
    if serving.resources.cpu or serving.threads:
        requests["cpu"] = serving.resources.cpu or str(serving.threads)
    limits: dict[str, str] = {}
    if serving.resources.memory:
        limits["memory"] = serving.resources.memory
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    container = {
        "name": "server",
        "image": image,
        "command": command,
        "args": args,
        "ports": [
            {"name": "http", "containerPort": SERVER_PORT},
            *([{"name": "memory", "containerPort": MEMORY_PORT}] if serving.engine != "vllm" else []),
        ],
        **server_probes(settings),
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": True}],
        "securityContext": container_security(),
        # a server that exits leaves its log's last lines in lastState (the PodsStarted CrashLoop message)
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_labels = {**labels, QUANT_LABEL: quantization}
    template = {
        "metadata": {"labels": pod_labels, "annotations": dict(serving.pod_annotations)},
        "spec": {
            "automountServiceAccountToken": False,
            # llama-server does not drain on SIGTERM; a hung one ignores it until SIGKILL
            "terminationGracePeriodSeconds": SERVER_GRACE_SECONDS,
            "containers": [container],
            "volumes": [cache_volume(settings, read_only=True)],
            **pool_placement(serving.pool, settings, gpus),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "labels": labels,
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(template)},
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "replicas": serving.replicas if replicas is None else replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": template,
        },
    }


#: On the server Deployment: the hash of the pod template the operator last wrote. A spec change that alters
#: the template (resources, pool, ctxSize, extraArgs, a fallback) changes it, and the operator then replaces
#: the Deployment, which rolls the pods; comparing a hash avoids diffing against the API server's defaults.
TEMPLATE_HASH_ANNOTATION = "kubeinfer.dev/template-hash"


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def server_probes(settings: OperatorSettings) -> dict[str, Any]:
    """`/health` answers 503 while the model loads and nothing at all from a hung (e.g. SIGSTOPped) server.

    The startup probe gives loading `serverStartupSeconds`; only then does the liveness probe run, and
    a server that leaves `/health` unanswered for about `serverHangSeconds` is killed and restarted by the
    kubelet with its usual back-off. A TCP probe would not do: a stopped process's socket still accepts.
    """
    health = {"path": "/health", "port": SERVER_PORT}
    period = 5
    return {
        "startupProbe": {
            "httpGet": health,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, math.ceil(settings.server_startup_seconds / period)),
        },
        "livenessProbe": {
            "httpGet": health,
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, math.ceil(settings.server_hang_seconds / period)),
        },
        "readinessProbe": {"httpGet": health, "periodSeconds": 2},
    }


def build_service(body: dict[str, Any], install: ModelInstall) -> dict[str, Any]:
    name = install.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "labels": install_labels(name, "server"),
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "selector": install_labels(name, "server"),
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http"}],
        },
    }
