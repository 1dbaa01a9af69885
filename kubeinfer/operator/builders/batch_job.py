"""Pure builders of a BatchJob's children: the validate Job, the Indexed worker Job and the merge Job.

All three mount the shared store (the `batchDataClaim` PVC) at `/data`, where the gateway keeps its files;
each returns a plain dict for the API, so it is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from typing import Any

from kubeinfer.kube.objects import owner_reference
from kubeinfer.operator.builders.common import POD_NAMESPACE_ENV, container_security, pool_placement, step_command
from kubeinfer.resources.names import batch_job_name, batch_labels, batch_result_name, shard_progress_prefix
from kubeinfer.settings import OperatorSettings, StorageSettings

DATA_MOUNT = "/data"
DATA_VOLUME = "batch-data"
#: The step (`kubeinfer step <step>`, kubeinfer.steps.batch) each component's pods run.
STEPS = {"validate": "validate", "worker": "shard", "merge": "merge", "clean": "clean"}


def _job(
    body: dict[str, Any],
    component: str,
    args: list[str],
    settings: OperatorSettings,
    backoff_limit: int,
    extra_spec: dict[str, Any] | None = None,
    owned: bool = True,
) -> dict[str, Any]:
    batch = body["metadata"]["name"]
    labels = batch_labels(batch, component)
    spec = body["spec"]
    container = {
        "name": component,
        "image": settings.runner_image,
        "command": step_command(STEPS[component]),
        "args": [
            "--batch-id",
            batch,
            "--input-file-id",
            spec["inputFileId"],
            "--data-dir",
            DATA_MOUNT,
            *args,
        ],
        "env": [
            POD_NAMESPACE_ENV,
            {"name": "KUBEINFER_OWNER", "value": _owner_json(body)},
            *storage_env(settings.storage),
        ],
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}],
        "securityContext": container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": batch_job_name(batch, component),
            "labels": labels,
            "ownerReferences": [owner_reference(body)] if owned else [],
        },
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": int(settings.job_timeout_seconds),
            **(extra_spec or {}),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.runner_service_account,
                    "containers": [container],
                    "volumes": [
                        {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": settings.batch_data_claim}}
                    ],
                    **pool_placement(settings.runner_pool, settings),
                },
            },
        },
    }


#: The credential variables boto3 reads, taken from `credentials_secret` (the session token is optional).
AWS_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def storage_env(storage: StorageSettings) -> list[dict[str, Any]]:
    """The operator's own `KUBEINFER_STORAGE__*` for the batch pods, so they use the bucket the gateway writes.

    The local cache directory stays the pod's default (on the shared volume); credentials come from the
    Secret named by `credentials_secret`, or else from the pod's own identity (IRSA, instance profile).
    """
    if storage.backend == "local":
        return []
    fields = storage.model_dump(mode="json", exclude_none=True, exclude={"cache_dir", "credentials_secret"})
    env: list[dict[str, Any]] = [
        {"name": f"KUBEINFER_STORAGE__{k.upper()}", "value": str(v)} for k, v in fields.items()
    ]
    if storage.credentials_secret:
        for key in AWS_SECRET_KEYS:
            ref = {"name": storage.credentials_secret, "key": key, "optional": key == "AWS_SESSION_TOKEN"}
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _owner_json(body: dict[str, Any]) -> str:
    return json.dumps(owner_reference(body))


def build_validate_job(body: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """`kubeinfer step validate`: checks every line and names the model; the result goes to a ConfigMap."""
    batch = body["metadata"]["name"]
    args = ["--endpoint", body["spec"]["endpoint"], "--result", batch_result_name(batch, "validate")]
    return _job(body, "validate", args, settings, backoff_limit=3)


#: A worker's command-line usage error (exit 2) fails on every retry, so it fails the Job at once; an evicted
#: or preempted pod (a drained node) is replaced without spending the back-off limit.
WORKER_FAILURE_POLICY = {
    "rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
}


def build_worker_job(body: dict[str, Any], model_install: str, settings: OperatorSettings) -> dict[str, Any]:
    """An Indexed Job: pod i owns shard i. A replacement pod starts only once its predecessor is gone
    (`podReplacementPolicy: Failed`), so two pods never write one shard's logs; each retry resumes them.
    """
    batch = body["metadata"]["name"]
    workers = int(body["spec"].get("workers", 2))
    args = [
        "--endpoint",
        body["spec"]["endpoint"],
        "--model-install",
        model_install,
        "--shards",
        str(workers),
        "--progress",
        shard_progress_prefix(batch),
        "--concurrency",
        str(settings.batch_worker_concurrency),
        "--request-deadline",
        f"{settings.batch_request_deadline_seconds:g}",
    ]
    extra = {
        "completionMode": "Indexed",
        "completions": workers,
        "parallelism": workers,
        "podReplacementPolicy": "Failed",
        "podFailurePolicy": WORKER_FAILURE_POLICY,
    }
    return _job(body, "worker", args, settings, backoff_limit=10 + 3 * workers, extra_spec=extra)


def build_merge_job(body: dict[str, Any], missing_code: str, settings: OperatorSettings) -> dict[str, Any]:
    """`kubeinfer step merge`: shard logs to output and error files in input order; result to a ConfigMap."""
    batch = body["metadata"]["name"]
    args = ["--result", batch_result_name(batch, "merge"), "--missing", missing_code]
    return _job(body, "merge", args, settings, backoff_limit=3)


def build_clean_job(body: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """`kubeinfer step clean`: removes a deleted batch's shard logs. Not owned: its owner is on its way out,
    and the garbage collector would take an owned Job with it. It removes itself an hour after finishing.
    """
    return _job(body, "clean", [], settings, backoff_limit=3, extra_spec={"ttlSecondsAfterFinished": 3600}, owned=False)
