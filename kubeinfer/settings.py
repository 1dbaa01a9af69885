"""The one settings model shared by the CLI, the operator and the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubeinfer.resources.names import POOL_LABEL


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "kubeinfer"


class StorageSettings(BaseModel):
    """Where uploaded and produced files live (env `KUBEINFER_STORAGE__<FIELD>`; docs/storage.md).

    Credentials come from the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...)
    or any other source boto3 reads; they are never part of these settings.
    """

    backend: Literal["local", "s3"] = Field(default="local", description="local: the data dir; s3: a bucket")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint; unset uses AWS S3")
    bucket: str = Field(default="", description="Bucket holding the files (must exist)")
    prefix: str = Field(default="kubeinfer", description="Objects are named <prefix>/<file id>")
    region: str | None = None
    cache_dir: Path | None = Field(
        default=None, description="Local copies of objects for batch runs; default <files dir>/.s3-cache"
    )
    part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Multipart upload part size")
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, description="Tries per S3 request on transient errors")
    credentials_secret: str | None = Field(
        default=None, description="Operator: Secret with AWS_* keys given to batch pods as env"
    )

    @field_validator("prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> StorageSettings:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("storage.backend is s3 but no bucket is set (KUBEINFER_STORAGE__BUCKET)")
        return self


class GatewaySettings(BaseModel):
    """Settings of `kubeinfer gateway serve` (env `KUBEINFER_GATEWAY__<FIELD>`)."""

    data_dir: Path | None = Field(default=None, description="Files and batch metadata; default <cache_dir>/gateway")
    api_keys: str = Field(default="", description="key1=projectA,key2=projectB")
    api_keys_file: Path | None = None
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest non-upload request body (JSON); larger ones get 413"
    )
    max_connections: int = Field(
        default=4096, gt=0, description="Open client connections at most (less when file descriptors are short)"
    )
    header_timeout_seconds: float = Field(
        default=10, gt=0, description="A connection must send a complete request head within this long, or is closed"
    )
    keep_alive_seconds: float = Field(default=5, gt=0, description="An idle keep-alive connection is closed after")
    fd_reserve: int = Field(
        default=256, ge=32, description="File descriptors kept free of client connections (files, SQLite, engine)"
    )
    auth_failures_max: int = Field(
        default=20, ge=1, description="Failed API key checks per client address within the window before 429"
    )
    auth_failure_window_seconds: float = Field(default=60, gt=0, description="Window of auth_failures_max")
    model: str = Field(default="smollm2-135m", description="Served model name (a catalog name when managed)")
    model_path: Path | None = Field(default=None, description="Serve this GGUF instead of a catalog model")
    engine_url: str | None = Field(default=None, description="Use a running llama-server instead of starting one")
    parallel: int = Field(default=4, gt=0, description="Slots of the managed llama-server")
    ctx_size: int = Field(default=4096, gt=0, description="Total context of the managed llama-server")
    threads: int | None = None
    batch_concurrency: int = Field(default=0, ge=0, description="Requests in flight per batch; 0 = 2 x slots")
    batch_max_attempts: int = Field(default=4, gt=0, description="Tries per request on transient engine errors")
    request_deadline_seconds: float = Field(
        default=300, gt=0, description="A batch request with no answer by then is abandoned and retried"
    )
    watchdog_check_seconds: float = Field(default=1.0, gt=0, description="Managed llama-server: check every")
    watchdog_hang_seconds: float = Field(
        default=30, gt=0, description="Managed llama-server: /health unanswered this long while alive = hung, killed"
    )
    watchdog_backoff_seconds: float = Field(default=1.0, gt=0, description="First delay before a restart")
    watchdog_backoff_max_seconds: float = Field(default=30, gt=0, description="Restart delays double up to this")
    cluster_namespace: str | None = Field(
        default=None, description="Also list the served ModelInstalls of this namespace in /v1/models"
    )
    batch_workers: int = Field(
        default=2, ge=1, le=256, description="Worker pods of each BatchJob the gateway creates in cluster mode"
    )
    reports_dir: Path | None = Field(
        default=None, description="Web console: folder whose subfolders hold `kubeinfer bench run` reports"
    )
    logs_dir: Path | None = Field(
        default=None, description="Web console: folder of model server and worker *.log files to show"
    )
    admin_projects: str = Field(
        default="",
        description="Comma-separated projects allowed to restart the shared model server (`kubeinfer workers restart`)",
    )
    label_studio_url: str | None = Field(
        default=None, description="Label Studio that webhook predictions are written to; default: what /setup sent"
    )
    label_studio_api_key: str | None = Field(
        default=None, description="Label Studio token for writing predictions; default: the one /setup sent"
    )


class OperatorSettings(BaseModel):
    """Settings of `kubeinfer operator run` (env `KUBEINFER_OPERATOR__<FIELD>`)."""

    namespace: str | None = Field(default=None, description="Watch one namespace; unset watches all")
    engine_image: str = "ghcr.io/kubeinfer/llama-server:0.3.36"
    engine_gpu_image: str = "ghcr.io/kubeinfer/llama-server-cuda:0.3.36"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    runner_image: str = "ghcr.io/kubeinfer/kubeinfer:0.1.0"
    runner_service_account: str = "kubeinfer-runner"
    runner_pool: str = Field(default="cpu", description="Pool whose nodes run prepare and measure Jobs")
    model_cache_claim: str = Field(default="model-cache", description="PVC holding the model cache")
    pool_label: str = POOL_LABEL
    pool_aliases: dict[str, str] = Field(
        default_factory=dict, description="Logical pool -> node label value, e.g. {'cpu': 'local'}"
    )
    poll_seconds: float = Field(default=1.0, gt=0, description="First wait between checks of a Job or Pod")
    max_poll_seconds: float = Field(default=10.0, gt=0, description="Waits grow by half up to this")
    max_workers: int = Field(
        default=64, ge=1, le=4096, description="kopf's handler threads: how many resources are worked at once"
    )
    job_timeout_seconds: float = Field(default=3600, gt=0)
    hf_endpoint: str | None = Field(default=None, description="HF_ENDPOINT for install Jobs (a mirror or proxy)")
    server_probe_timeout_seconds: float = Field(default=10, gt=0, description="A served model must answer within")
    server_startup_seconds: float = Field(
        default=1800, gt=0, description="Model server: loading may take this long before liveness checks start"
    )
    server_hang_seconds: float = Field(
        default=30, ge=5, description="Model server: /health unanswered this long = hung; the kubelet restarts it"
    )
    metrics_port: int = Field(default=8000, ge=0, le=65535, description="Port of /metrics; 0 turns it off")
    batch_data_claim: str = Field(
        default="kubeinfer-data", description="ReadWriteMany PVC holding the gateway's files and batch shard logs"
    )
    batch_worker_concurrency: int = Field(
        default=0, ge=0, description="Requests in flight per batch worker; 0 = 2 x slots of all replicas / workers"
    )
    batch_project_concurrency: int = Field(
        default=0, ge=0, description="BatchJobs of one project running workers at once; 0 = no limit"
    )
    batch_request_deadline_seconds: float = Field(
        default=300, gt=0, description="A worker abandons and retries a request with no answer by then"
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Copied from Settings.storage; handed on to batch pods"
    )
    report_retry_seconds: float = Field(
        default=60, gt=0, description="Wait before storing a matrix's report again after the store refused it"
    )
    report_config_map_max_bytes: int = Field(
        default=1_000_000,
        ge=1,
        le=1_000_000,
        description="A BenchmarkMatrix report larger than this goes to the store, not a ConfigMap (1 MiB at most)",
    )
    batch_stall_seconds: float = Field(
        default=600,
        gt=0,
        description="A running BatchJob with no request finished for this long gets Progressing=False and an Event",
    )


class Settings(BaseSettings):
    """Read from `KUBEINFER_*` environment variables (nested with `__`).

    The cache holds heavy, versioned artefacts (built engines, models) outside any checkout so that a
    fresh clone and a second run reuse them.
    """

    model_config = SettingsConfigDict(env_prefix="KUBEINFER_", env_nested_delimiter="__", extra="ignore")

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    engine_dir: Path | None = Field(default=None, description="Overrides <cache_dir>/llama.cpp")
    model_dir: Path | None = Field(default=None, description="Overrides <cache_dir>/models")
    build_jobs: int = Field(default=0, description="Parallel compile jobs; 0 means one per CPU")
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)

    @model_validator(mode="after")
    def _operator_shares_storage(self) -> Settings:
        """The operator passes the store to its batch pods, so it carries the one `KUBEINFER_STORAGE__*` names."""
        self.operator.storage = self.storage
        return self

    @property
    def engines_root(self) -> Path:
        return self.engine_dir or self.cache_dir / "llama.cpp"

    @property
    def models_root(self) -> Path:
        return self.model_dir or self.cache_dir / "models"


def get_settings() -> Settings:
    return Settings()
