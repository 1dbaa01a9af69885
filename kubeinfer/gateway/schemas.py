"""Request and response bodies, field for field as OpenAI's File and Batch objects and seed 000's job views."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from kubeinfer.batch.service import usage_of
from kubeinfer.models.catalog import CATALOG
from kubeinfer.storage.records import BatchRecord, FileRecord

#: A Hugging Face user or repo name as huggingface_hub's `validate_repo_id` accepts it: at most 96 ASCII letters,
#: digits, `_`, `.` and `-`, each `.` or `-` between two others (none first, last or repeated); a repo name not
#: ending in `.git`. Anything else the Hub library refuses before asking, and the analysis would blame the Hub.
_HF_NAME = r"(?![A-Za-z0-9_.-]{97})[A-Za-z0-9_]+([.-][A-Za-z0-9_]+)*"
_HF_REPO = rf"{_HF_NAME}/{_HF_NAME}(?<!\.git)"
#: What `/api/models/analyze` can look up: a Hugging Face URL or repo id, a local GGUF path (no `:`, so no URL),
#: or a catalog name (kubeinfer.models.analysis; surrounding spaces are ignored).
MODEL_REFERENCE_PATTERN = (
    rf"^\s*(https?://(www\.)?huggingface\.co/{_HF_REPO}(/.*)?|{_HF_REPO}|[^:]*\.gguf|"
    + "|".join(name.replace(".", r"\.") for name in sorted(CATALOG))
    + r")\s*$"
)
#: A Label Studio project id as a string: `/setup` and `/predict` send "<id>.<timestamp>" ("12.1700000000").
PROJECT_ID_PATTERN = r"^\d+(\.\d+)?$"

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None
    sha256: str = Field(description="kubeinfer extension: checksum of the stored content")

    @classmethod
    def of(cls, rec: FileRecord) -> FileObject:
        return cls(
            id=rec.id,
            bytes=rec.bytes,
            created_at=rec.created_at,
            filename=rec.filename,
            purpose=rec.purpose,
            sha256=rec.sha256,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class BatchErrorItem(BaseModel):
    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchErrorItem]


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    model: str | None = None
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    usage: BatchUsage | None = None
    metadata: dict[str, str] | None = None

    @classmethod
    def of(cls, rec: BatchRecord) -> BatchObject:
        errors = BatchErrors(data=[BatchErrorItem(**e) for e in rec.errors]) if rec.errors else None
        return cls(
            id=rec.id,
            endpoint=rec.endpoint,
            model=rec.model,
            errors=errors,
            input_file_id=rec.input_file_id,
            completion_window=rec.completion_window,
            status=rec.status,
            output_file_id=rec.output_file_id,
            error_file_id=rec.error_file_id,
            created_at=rec.created_at,
            in_progress_at=rec.in_progress_at,
            expires_at=rec.expires_at,
            finalizing_at=rec.finalizing_at,
            completed_at=rec.completed_at,
            failed_at=rec.failed_at,
            expired_at=rec.expired_at,
            cancelling_at=rec.cancelling_at,
            cancelled_at=rec.cancelled_at,
            request_counts=RequestCounts(total=rec.total, completed=rec.completed, failed=rec.failed),
            usage=BatchUsage(**usage_of(rec)),
            metadata=rec.metadata,
        )


#: OpenAI's limits on a batch's metadata.
METADATA_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
#: What an error message quotes of an offending key.
_QUOTE = 40


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


class BatchCreate(BaseModel):
    input_file_id: str
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    completion_window: Literal["24h"] = "24h"
    metadata: (
        Annotated[
            dict[
                Annotated[str, StringConstraints(max_length=METADATA_KEY_CHARS)],
                Annotated[str, StringConstraints(max_length=METADATA_VALUE_CHARS)],
            ],
            Field(max_length=METADATA_KEYS),
        ]
        | None
    ) = Field(
        default=None,
        description=f"At most {METADATA_KEYS} pairs; keys up to {METADATA_KEY_CHARS} characters, "
        f"values up to {METADATA_VALUE_CHARS}",
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_limits(cls, value: Any) -> Any:
        """OpenAI's limits, with messages that name the offending key but never echo a huge one whole."""
        if not isinstance(value, dict):
            return value
        if len(value) > METADATA_KEYS:
            raise ValueError(f"metadata has {len(value)} keys, at most {METADATA_KEYS} are allowed")
        for key, item in value.items():
            if isinstance(key, str) and len(key) > METADATA_KEY_CHARS:
                raise ValueError(
                    f"metadata key {_quote(key)} has {len(key)} characters, at most {METADATA_KEY_CHARS} are allowed"
                )
            if isinstance(item, str) and len(item) > METADATA_VALUE_CHARS:
                raise ValueError(
                    f"metadata[{_quote(key)}] has {len(item)} characters, at most {METADATA_VALUE_CHARS} are allowed"
                )
        return value


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "kubeinfer"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class JobStats(BaseModel):
    total_jobs: int
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    avg_token_throughput: float | None = Field(description="tokens per second of inference time")
    success_rate: float | None = Field(description="completed jobs / finished jobs")


class JobEntry(BaseModel):
    batch_id: str
    status: BatchStatus
    model: str | None
    created_at: int
    completed_at: int | None
    total_requests: int
    completed_requests: int
    failed_requests: int
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    inference_seconds: float | None
    token_throughput: float | None
    request_throughput: float | None


class JobHistory(BaseModel):
    jobs: list[JobEntry]


class AnalyzeRequest(BaseModel):
    # the route checks the pattern itself, to answer with what it expected rather than with the pattern
    content: str = Field(
        json_schema_extra={"pattern": MODEL_REFERENCE_PATTERN},
        description="Hugging Face URL or repo id, a local GGUF path inside the model cache, or a catalog name",
    )
    # bounded so that the estimate stays a finite number (1e308 GiB once answered `available_gb: null`)
    ctx_size: int = Field(default=4096, gt=0, le=1 << 24)
    parallel: int = Field(default=1, gt=0, le=4096)
    memory_gb: float | None = Field(
        default=None, gt=0, le=1 << 20, description="Memory available (GiB, at most 1 PiB); default: this host's"
    )


class AnalyzeResponse(BaseModel):
    success: bool = True
    model_id: str
    will_fit: bool
    fits_without_offload: bool
    memory: dict[str, float]
    performance: dict[str, Any]


def page(items: list[Any], limit: int) -> tuple[list[Any], bool]:
    """Trim a list fetched with limit+1 rows to `limit`, reporting whether more exist."""
    return items[:limit], len(items) > limit
