"""What a matrix runner needs from wherever cells execute (this machine, or pods in a cluster)."""

from __future__ import annotations

from typing import Protocol

from kubeinfer.bench.planner import PlannedCell
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, ProfileResult


class CellExecutor(Protocol):
    def target_memory_gb(self, spec: BenchmarkMatrixSpec) -> float:
        """Memory of where cells run (this host, or the pool's smallest node); spec.limits.maxMemoryGb wins."""
        ...

    def run_cell(self, cell: PlannedCell, spec: BenchmarkMatrixSpec, limit_gb: float) -> CellResult:
        """Fetch, pre-flight, serve and measure one cell; every profile but stress."""
        ...

    def run_stress(self, cell: PlannedCell, spec: BenchmarkMatrixSpec) -> ProfileResult: ...
