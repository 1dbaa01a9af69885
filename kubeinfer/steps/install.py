"""`kubeinfer step install`: a ModelInstall's install Job, with the resource from the environment and its result
and download progress written to ConfigMaps; `kubeinfer models install` runs the same install on a laptop.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from kubeinfer.engines.llamacpp_build import find_installed
from kubeinfer.models.cache import ChecksumError, ModelCache
from kubeinfer.models.install import SOURCE_MOUNT
from kubeinfer.models.install import install as install_model
from kubeinfer.models.quantize import QuantizeError
from kubeinfer.models.sizing import SizingError
from kubeinfer.models.sources import ModelFetchError, ModelResolver, TransientFetchError
from kubeinfer.resources.loader import ManifestError, parse_document
from kubeinfer.resources.model_install import ModelInstall
from kubeinfer.settings import get_settings
from kubeinfer.steps.output import console, fail
from kubeinfer.steps.results import write_result

ENV_VAR = "KUBEINFER_MODEL_INSTALL"
GIB = 1024**3
#: Exit code of a broken transfer: the Job's next pod resumes the partial download.
RESUMABLE = 75
ProgressCallback = Callable[[int, int | None, float], None]


def model_resolver() -> ModelResolver:
    """llama-quantize from PATH (an image, a pod) or else from the engine cache."""
    settings = get_settings()
    found = shutil.which("llama-quantize")
    engine = None if found else find_installed(settings.engines_root)
    quantizer = Path(found) if found else (engine.llama_quantize if engine else None)
    return ModelResolver(ModelCache(settings.models_root), quantizer, log=console.print)


def load_from_env() -> ModelInstall:
    raw = os.environ.get(ENV_VAR)
    if not raw:
        raise ManifestError(f"give a ModelInstall manifest, or set {ENV_VAR} (the operator's install Job does)")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{ENV_VAR}: not JSON ({exc})") from None
    return parse_document(data, ModelInstall, ENV_VAR)


class ProgressWriter:
    """Writes download progress to a ConfigMap at most every `interval` seconds; the operator mirrors it."""

    def __init__(self, name: str, interval: float = 2.0) -> None:
        self.name = name
        self.interval = interval
        self._last = 0.0
        self._latest: dict[str, float | int | None] | None = None
        self._lock = threading.Lock()

    def update(self, done: int, total: int | None, rate: float) -> None:
        with self._lock:
            self._latest = {"bytesDone": done, "bytesTotal": total, "bytesPerSecond": round(rate, 1)}
            if time.monotonic() - self._last < self.interval:
                return
            self._last = time.monotonic()
        self.flush()

    def flush(self) -> None:
        with self._lock:
            latest = self._latest
        if latest is not None:
            write_result(self.name, latest)


def run_install(
    resource: ModelInstall,
    result: str | None,
    progress: str | None,
    source_mount: str,
    console_progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Fetch (resuming a partial download), verify, derive and size a ModelInstall's files.

    With `result` (in a Job), a broken transfer exits non-zero so the Job's next pod resumes it; a failure
    that another try cannot fix (checksum mismatch, unknown file) is written to the result and exits 0.
    """
    writer = ProgressWriter(progress) if progress else None
    resolver = model_resolver()
    resolver.progress = writer.update if writer else console_progress
    if log is not None:
        resolver.log = log
    try:
        outcome = install_model(resource.model_name, resource.spec, resolver, source_mount)
    except TransientFetchError as exc:
        fail(f"{exc}; run again to resume", code=RESUMABLE)
    except ChecksumError as exc:
        _install_failed(result, "ChecksumMismatch", str(exc))
    except (ModelFetchError, QuantizeError, SizingError, OSError, ValueError) as exc:
        _install_failed(result, "InstallFailed", str(exc))
    finally:
        if writer:
            writer.flush()
    if result:
        write_result(result, outcome.to_dict())
    for item in outcome.files:
        console.print(f"{resource.model_name} {item.quantization}: {item.path} sha256 {item.sha256[:12]}...")
    sizing: dict[str, Any] = outcome.sizing
    console.print(
        f"sizing ({sizing['quantization']}, ctx {sizing['ctxSize']} x {sizing['parallel']}):"
        f" {sizing['estimatedBytes'] / GIB:.2f} GiB"
    )


def _install_failed(result: str | None, reason: str, message: str) -> NoReturn:
    if result is None:
        fail(message)
    write_result(result, {"error": message, "reason": reason})
    console.print(f"{reason}: {message}")
    raise typer.Exit(0)


def install(
    result: str = typer.Option(..., help="ConfigMap to write the result to."),
    progress: str = typer.Option(..., help="ConfigMap to write download progress to."),
    source_mount: str = typer.Option(SOURCE_MOUNT, help="Where a `pvc` source's claim is mounted."),
) -> None:
    """Install the ModelInstall of `KUBEINFER_MODEL_INSTALL` into the model cache (the operator's install Job)."""
    try:
        resource = load_from_env()
    except ManifestError as exc:
        fail(str(exc))
    run_install(resource, result, progress, source_mount)
