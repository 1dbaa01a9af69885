"""`kubeinfer step prepare|measure`: the steps an in-cluster runner Job performs for one matrix cell.

The operator starts these in Jobs (load generation never runs in the operator process). Each step reads
the matrix from `KUBEINFER_MATRIX`, does its work against the model cache mounted at `KUBEINFER_MODEL_DIR`
or against a model server's URL, and writes its result as JSON into a ConfigMap the operator reads back.
A step that fails in a way the matrix should record (model unavailable, cannot be sized) still exits 0
with an `error` in its result, so the Job is not retried for nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import typer

from kubeinfer.bench import preflight
from kubeinfer.bench.load.records import collecting_sink
from kubeinfer.bench.measure import measure_profiles
from kubeinfer.bench.profiles.base import MemoryProbe, ProfileContext
from kubeinfer.engines.llamacpp_build import find_installed
from kubeinfer.engines.supervisor import MemoryReadError, fetch_memory
from kubeinfer.models.cache import ModelCache
from kubeinfer.models.quantize import QuantizeError
from kubeinfer.models.sizing import SizingError
from kubeinfer.models.sources import ModelFetchError, ModelResolver
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, ModelEntry
from kubeinfer.settings import get_settings
from kubeinfer.steps.output import console, fail
from kubeinfer.steps.results import write_records, write_result


def _matrix() -> BenchmarkMatrix:
    raw = os.environ.get("KUBEINFER_MATRIX")
    if not raw:
        fail("KUBEINFER_MATRIX is not set; this command runs inside a runner Job")
    return BenchmarkMatrix.model_validate(json.loads(raw))


def _model(matrix: BenchmarkMatrix, cell: str) -> tuple[ModelEntry, str]:
    name, _, quantization = cell.partition("/")
    for model in matrix.spec.models:
        if model.name == name and quantization in model.files:
            return model, quantization
    fail(f"cell {cell} is not in matrix {matrix.metadata.name}")


def prepare(
    cell: str = typer.Option(..., help="model/quantization"),
    result: str = typer.Option(..., help="ConfigMap to write the result to"),
) -> None:
    """Fetch or derive the cell's model into the cache and size its server."""
    matrix = _matrix()
    model, quantization = _model(matrix, cell)
    settings = get_settings()
    engine = find_installed(settings.engines_root)
    quantize = shutil.which("llama-quantize") or (str(engine.llama_quantize) if engine else None)
    resolver = ModelResolver(ModelCache(settings.models_root), Path(quantize) if quantize else None, log=console.print)
    try:
        cached = resolver.resolve(model.name, quantization, model.files)
        plan = preflight.plan_server(cached.path, matrix.spec)
    except (ModelFetchError, QuantizeError, SizingError, OSError, LookupError, ValueError) as exc:
        write_result(result, {"error": f"model unavailable: {exc}"})
        return
    try:
        relative = str(cached.path.relative_to(settings.models_root))
    except ValueError:
        write_result(result, {"error": f"{cached.path} is outside the model cache {settings.models_root}"})
        return
    write_result(
        result,
        {
            "model_path": relative,
            "size_bytes": cached.size_bytes,
            "estimated_bytes": plan.estimated_bytes,
            "ctx_size": plan.ctx_size,
            "ctx_per_slot": plan.ctx_per_slot,
        },
    )
    console.print(f"{cell}: {relative}, estimated {plan.estimated_bytes / 1024**3:.2f} GiB")


def measure(
    cell: str = typer.Option(..., help="model/quantization"),
    result: str = typer.Option(..., help="ConfigMap to write the result to"),
    server: str = typer.Option(..., help="Base URL of the cell's model server"),
    profiles: str = typer.Option(..., help="Comma-separated profile names"),
    ctx_per_slot: int = typer.Option(..., help="Largest prompt plus generation one slot accepts"),
    memory_url: str | None = typer.Option(None, help="The server's GET /memory; unset: memory is not measured"),
) -> None:
    """Run profiles against the cell's server; the operator rates and judges them.

    With `--memory-url` the server's memory (from its `kubeinfer engine serve` supervisor) is read before
    and after the profiles; the second reading's peak covers the whole life of the server. Every request the
    interactive and batch profiles sent goes to ConfigMaps beside the result (kubeinfer/kube/record_maps.py).
    """
    matrix = _matrix()
    model, _ = _model(matrix, cell)
    sink, records = collecting_sink()
    context = ProfileContext(
        base_url=server.rstrip("/"),
        model=model.name,
        profiles=matrix.spec.profiles,
        quick=matrix.spec.mode == "quick",
        server_pid=None,
        max_context=ctx_per_slot,
        stop=threading.Event(),
        log=console.print,
        memory_probe=_memory_probe(memory_url) if memory_url else None,
        records=sink,
    )
    errors: list[str] = []
    before = _read_memory(memory_url, errors)
    measured = measure_profiles(context, [p for p in profiles.split(",") if p], rate=False)
    after = _read_memory(memory_url, errors)
    records_error = write_records(result, matrix.metadata.name, cell, records)
    write_result(
        result,
        {
            "profiles": {name: outcome.model_dump(mode="json") for name, outcome in measured.items()},
            "memory": {"before": before, "after": after} if after else None,
            "memory_error": errors[0] if errors else None,
            "records_error": records_error,
        },
    )


def _memory_probe(url: str) -> MemoryProbe:
    """The profiles' per-request memory readings (batch drift, long-context swap) from the supervisor."""

    def probe() -> tuple[int, int, int] | None:
        try:
            figures = fetch_memory(url)
        except MemoryReadError:
            return None
        return figures.rss_bytes, figures.peak_rss_bytes, figures.swap_bytes

    return probe


def _read_memory(url: str | None, errors: list[str]) -> dict[str, Any] | None:
    if url is None:
        return None
    try:
        return fetch_memory(url).model_dump()
    except MemoryReadError as exc:
        console.print(str(exc))
        errors.append(str(exc))
        return None
