"""Will a model fit this machine? Resolve a URL, repo id or GGUF path, then size it with models.sizing.

Domain code shared by `/api/models/analyze` (which only parses and reports) and the CLI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psutil

from kubeinfer.models.catalog import CATALOG
from kubeinfer.models.sizing import GIB, SizingError, estimate_memory, geometry_from_hf_config, read_geometry

_HF_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/([\w.-]+)/([\w.-]+)(?:/.*)?$")
_REPO_ID = re.compile(r"^([\w.-]+)/([\w.-]+)$")

#: Decode reads every weight once per token, so tokens/s ~ effective bandwidth / weight bytes. Calibrated
#: on this project's reference run: SmolLM2-135M Q4_1 (0.092 GiB of weights) decodes 120 tok/s on 2 threads.
EFFECTIVE_GIB_PER_SECOND = 120 * 0.092


class AnalyzeError(ValueError):
    def __init__(self, message: str, status_code: int = 400, code: str = "invalid_model_reference") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


def model_reference(content: str, local_root: Path | None = None) -> tuple[str, Path | None]:
    """(model id, local GGUF path or None for a Hugging Face repo) from what the user pasted.

    With `local_root` (the gateway passes its model cache), a local path must lie inside it: the API
    must not tell its callers which files exist elsewhere on the gateway's machine.
    """
    text = content.strip()
    if text.endswith(".gguf") and not text.startswith(("http://", "https://")):
        path = Path(text).expanduser()
        if local_root is not None and not path.resolve().is_relative_to(local_root.resolve()):
            raise AnalyzeError(
                f"local GGUF paths must be inside the model cache ({local_root})", 403, "path_not_allowed"
            )
        if not path.is_file():
            raise AnalyzeError(f"GGUF file not found: {text}", 404, "model_not_found")
        return path.name.removesuffix(".gguf"), path
    match = _HF_URL.match(text) or _REPO_ID.match(text)
    if not match:
        raise AnalyzeError(
            f"Could not extract model ID from {text!r}: expected a Hugging Face URL "
            "(https://huggingface.co/org/model), a repo id (org/model) or a path to a .gguf file"
        )
    return f"{match.group(1)}/{match.group(2)}", None


def _hf_config(repo_id: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        config: dict[str, Any] = json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text())
    except RepositoryNotFoundError:
        raise AnalyzeError(
            f"Hugging Face repo '{repo_id}' does not exist or is private", 404, "model_not_found"
        ) from None
    except EntryNotFoundError:
        raise AnalyzeError(
            f"Hugging Face repo '{repo_id}' has no config.json; for a GGUF-only repo, pull a "
            "file and pass its local path",
            422,
            "unsupported_model",
        ) from None
    except Exception as exc:  # network down, proxy, rate limit: say so rather than guess
        raise AnalyzeError(
            f"could not read {repo_id}/config.json from Hugging Face: {type(exc).__name__}", 502, "hub_unreachable"
        ) from None
    return config


def analyze(
    content: str, ctx_size: int, parallel: int, memory_gb: float | None, models_root: Path | None = None
) -> dict[str, Any]:
    name = content.strip()
    if models_root is not None and name in CATALOG:
        bundled = CATALOG[name]
        cached = models_root / name / f"{name}.{bundled.quantization}.gguf"
        if cached.is_file():
            name = str(cached)
    model_id, path = model_reference(name, models_root)
    try:
        geometry = read_geometry(path) if path else geometry_from_hf_config(_hf_config(model_id), None, 2.0)
        estimate = estimate_memory(geometry, ctx_size, parallel)
    except SizingError as exc:
        raise AnalyzeError(str(exc), 422, "unsupported_model") from None
    available = memory_gb * GIB if memory_gb else psutil.virtual_memory().available
    weights_gib = estimate.weights_bytes / GIB
    return {
        "model_id": model_id,
        "will_fit": estimate.total_bytes <= available,
        "fits_without_offload": estimate.fits_without_offload,
        "memory": {
            "total_gb": estimate.gb("total_bytes"),
            "model_gb": estimate.gb("weights_bytes"),
            "kv_cache_gb": estimate.gb("kv_cache_bytes"),
            "overhead_gb": round((estimate.overhead_bytes + estimate.compute_buffer_bytes) / GIB, 2),
            "cpu_offload_gb": estimate.gb("cpu_offload_bytes"),
            "available_gb": round(available / GIB, 2),
        },
        "performance": {
            "estimated_throughput": round(EFFECTIVE_GIB_PER_SECOND / weights_gib, 1) if weights_gib else None,
            "throughput_unit": "generated tokens/s, one stream, CPU",
        },
    }
