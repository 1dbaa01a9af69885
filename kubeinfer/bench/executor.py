"""What a matrix runner needs from wherever cells execute (this machine, or pods in a cluster)."""

from __future__ import annotations

from typing import Protocol

from kubeinfer.bench.planner import PlannedCell
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, ProfileResult


class CellExecutor(Protocol):
    def memory_limit_gb(self, spec: BenchmarkMatrixSpec) -> float:
        """The limit rules 1 and 5 compare against: spec.limits.maxMemoryGb or the target's memory."""
        ...

    def run_cell(self, cell: PlannedCell, spec: BenchmarkMatrixSpec, limit_gb: float) -> CellResult:
        """Fetch, pre-flight, serve and measure one cell; every profile but stress."""
        ...

    def run_stress(self, cell: PlannedCell, spec: BenchmarkMatrixSpec) -> ProfileResult: ...
