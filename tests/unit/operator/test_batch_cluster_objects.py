"""What the operator builds for a BatchJob, and how the gateway maps a BatchJob back to a Batch object."""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.batch.admission import Candidate, may_start
from kubeinfer.batch.service import InvalidBatchRequest
from kubeinfer.gateway.cluster_batches import priority_of, record_of
from kubeinfer.gateway.schemas import BatchObject
from kubeinfer.operator.builders.batch_job import build_clean_job, build_merge_job, build_validate_job, build_worker_job
from kubeinfer.operator.rbac import OPERATOR_RULES, RUNNER_RULES
from kubeinfer.settings import OperatorSettings


def _body(workers: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "kubeinfer.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {
            "name": "batch-abc",
            "namespace": "ns",
            "uid": "u-1",
            "creationTimestamp": "2026-01-02T03:04:05Z",
        },
        "spec": {"inputFileId": "file-in", "endpoint": "/v1/completions", "workers": workers, "project": "team-a"},
    }


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def test_worker_job_is_indexed_one_pod_per_shard_never_two_at_once() -> None:
    settings = OperatorSettings(batch_data_claim="shared", pool_aliases={"cpu": "local"})
    job = build_worker_job(_body(), "smollm2", settings)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["podReplacementPolicy"] == "Failed"
    assert job["metadata"]["name"] == "batch-abc-worker"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    container = _container(job)
    args = container["args"]
    assert args[args.index("--model-install") + 1] == "smollm2"
    assert args[args.index("--shards") + 1] == "3"
    assert args[args.index("--data-dir") + 1] == "/data"
    assert container["volumeMounts"] == [{"name": "batch-data", "mountPath": "/data"}]
    pod = spec["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared"
    assert pod["nodeSelector"] == {"kubeinfer.dev/pool": "local"}
    assert pod["serviceAccountName"] == settings.runner_service_account


def test_validate_and_merge_jobs_write_their_result_configmaps() -> None:
    settings = OperatorSettings()
    validate = _container(build_validate_job(_body(), settings))
    assert validate["command"] == ["kubeinfer", "step", "validate"]
    assert validate["args"][validate["args"].index("--result") + 1] == "batch-abc-validate-result"
    merge = _container(build_merge_job(_body(), "batch_expired", settings))
    assert merge["args"][-2:] == ["--missing", "batch_expired"]
    assert merge["args"][merge["args"].index("--result") + 1] == "batch-abc-merge-result"


def test_clean_job_outlives_its_deleted_owner_and_removes_itself() -> None:
    job = build_clean_job(_body(), OperatorSettings())
    assert job["metadata"]["name"].endswith("-clean")
    assert job["metadata"]["ownerReferences"] == []  # the garbage collector would take an owned Job along
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kubeinfer", "step", "clean"]
    assert "--data-dir" in container["args"]


def test_rbac_covers_batch_jobs_and_lets_workers_find_the_model_servers() -> None:
    operator = {(r, v) for rule in OPERATOR_RULES for r in rule["resources"] for v in rule["verbs"]}
    assert {("batchjobs", "watch"), ("batchjobs/status", "patch"), ("jobs", "delete"), ("pods", "list")} <= operator
    runner = {(r, v) for rule in RUNNER_RULES for r in rule["resources"] for v in rule["verbs"]}
    assert ("endpointslices", "list") in runner


def test_batch_job_status_maps_to_an_openai_batch_object() -> None:
    body = _body() | {
        "status": {
            "status": "completed",
            "createdAt": 100,
            "expiresAt": 86500,
            "inProgressAt": 110,
            "completedAt": 200,
            "model": "smollm2-135m",
            "requestCounts": {"total": 3, "completed": 2, "failed": 1},
            "usage": {"promptTokens": 30, "completionTokens": 4},
            "outputFileId": "file-output-abc",
            "errorFileId": "file-errors-abc",
        }
    }
    batch = BatchObject.of(record_of(body))
    assert (batch.id, batch.status, batch.model, batch.endpoint) == (
        "batch-abc",
        "completed",
        "smollm2-135m",
        "/v1/completions",
    )
    assert (batch.created_at, batch.in_progress_at, batch.completed_at) == (100, 110, 200)
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (30, 4)
    assert (batch.output_file_id, batch.error_file_id) == ("file-output-abc", "file-errors-abc")


def test_a_new_batch_job_without_status_reads_as_validating() -> None:
    batch = BatchObject.of(record_of(_body()))
    assert batch.status == "validating"
    assert batch.created_at == 1767323045
    assert batch.expires_at == 1767323045 + 24 * 3600
    assert batch.errors is None


def test_failed_batch_job_errors_keep_code_and_line() -> None:
    body = _body() | {
        "status": {"status": "failed", "errors": [{"code": "invalid_json_line", "message": "bad", "line": 5}]}
    }
    batch = BatchObject.of(record_of(body))
    assert batch.errors is not None
    [error] = batch.errors.data
    assert (error.code, error.line, error.message) == ("invalid_json_line", 5, "bad")


def _candidate(name: str, priority: int = 0, created: int = 0, running: bool = False, project: str = "a") -> Candidate:
    return Candidate(name, project, priority, created, running=running, waiting=not running)


def test_project_limit_admits_the_highest_priority_then_the_oldest() -> None:
    batches = [
        _candidate("big", running=True),
        _candidate("old", created=1),
        _candidate("urgent", priority=5, created=2),
        _candidate("other-project", created=3, project="b"),
    ]
    assert not may_start("urgent", batches, limit=1)  # "big" holds the project's only place
    assert may_start("other-project", batches, limit=1)  # another project is not held up
    assert may_start("urgent", batches, limit=2)
    assert not may_start("old", batches, limit=2)
    assert may_start("old", batches, limit=3)
    assert may_start("old", batches, limit=0)  # no limit


def test_priority_outside_the_range_is_refused() -> None:
    with pytest.raises(InvalidBatchRequest, match="metadata.priority"):
        priority_of({"priority": "high"})
    with pytest.raises(InvalidBatchRequest, match="metadata.priority"):
        priority_of({"priority": "101"})
    assert priority_of({"priority": "-3"}) == -3
    assert priority_of(None) == 0
