"""BatchJob: one OpenAI batch (an uploaded JSONL file of requests) executed against a served model.

The spec holds what `POST /v1/batches` accepts; the status follows OpenAI's batch lifecycle
(validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled), so the gateway
can answer `GET /v1/batches/{id}` from the resource alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeinfer.resources.common import CamelModel, Condition, ObjectMeta

BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
BATCH_STATUSES = (
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)


class BatchJobSpec(CamelModel):
    input_file_id: str = Field(pattern=r"^file-[A-Za-z0-9_-]+$", max_length=128)
    endpoint: Literal["/v1/chat/completions", "/v1/completions"] = "/v1/chat/completions"
    completion_window: Literal["24h"] = "24h"
    model: str | None = Field(
        default=None, max_length=253, description="served model (a ModelInstall's model); default: the input's"
    )
    project: str = Field(default="default", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    priority: int = Field(default=0, ge=-100, le=100, description="higher runs first within the project's limit")
    workers: int = Field(default=2, ge=1, le=256, description="parallel worker pods (an Indexed Job's completions)")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    cancel: bool = Field(default=False, description="set to true to cancel; the operator drives it")


class RequestCounts(CamelModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchUsage(CamelModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BatchError(CamelModel):
    """One problem of a batch, in the shape of OpenAI's `BatchError`."""

    code: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    param: str | None = None
    line: int | None = None


class BatchJobStatus(CamelModel):
    status: Literal[
        "validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled"
    ] = "validating"
    observed_generation: int | None = None
    model: str | None = Field(default=None, description="the model the requests name (validated)")
    model_install: str | None = Field(default=None, description="the ModelInstall serving the model")
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    usage: BatchUsage = Field(default_factory=BatchUsage)
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    workers_started_at: int | None = Field(
        default=None, description="when the worker Job was created (after waiting for the project's limit)"
    )
    last_progress_at: int | None = Field(
        default=None, description="when the workers last finished a request (or started); feeds Progressing"
    )
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expires_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    errors: list[BatchError] = Field(default_factory=list, max_length=101)
    conditions: list[Condition] = Field(default_factory=list)


class BatchJob(CamelModel):
    api_version: Literal["kubeinfer.dev/v1alpha1"] = "kubeinfer.dev/v1alpha1"
    kind: Literal["BatchJob"] = "BatchJob"
    metadata: ObjectMeta
    spec: BatchJobSpec
    status: BatchJobStatus | None = None
