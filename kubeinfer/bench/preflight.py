"""Size the server for a cell: its context, and the memory it will need before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubeinfer.models.sizing import estimate_memory, read_geometry
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec


@dataclass(frozen=True)
class ServerPlan:
    ctx_size: int
    ctx_per_slot: int
    estimated_bytes: int
    trained_context: int


def context_per_slot(spec: BenchmarkMatrixSpec, trained_context: int) -> int:
    """Large enough for the long-context profile's biggest prompt, never beyond what the model was trained on."""
    per_slot = spec.engine.ctx_size // spec.engine.parallel
    long_context = spec.profiles.long_context
    if long_context.enabled:
        per_slot = max(per_slot, max(long_context.context_sizes) + long_context.max_tokens)
    return min(per_slot, trained_context) if trained_context > 0 else per_slot


def plan_server(model_path: Path, spec: BenchmarkMatrixSpec) -> ServerPlan:
    geometry = read_geometry(model_path)
    per_slot = context_per_slot(spec, geometry.context_length)
    ctx_size = per_slot * spec.engine.parallel
    estimate = estimate_memory(geometry, ctx_size=ctx_size, parallel=spec.engine.parallel)
    return ServerPlan(ctx_size, per_slot, estimate.total_bytes, geometry.context_length)
