"""Matrix order: traverse by quantization (Q4_K_M first), smaller models before larger ones."""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, Mode, ModelEntry


class PlanError(ValueError):
    """The spec selects no cell (e.g. quick mode with none of its quantizations listed)."""


@dataclass(frozen=True)
class PlannedCell:
    model: ModelEntry
    quantization: str

    @property
    def key(self) -> str:
        return f"{self.model.name}/{self.quantization}"

    def pending_result(self) -> CellResult:
        return CellResult(
            model=self.model.name, quantization=self.quantization, model_size_b=self.model.parameters_billion
        )


def quantization_sequence(spec: BenchmarkMatrixSpec) -> list[str]:
    """The spec's order first, then quantizations it does not name, in the order the manifest lists them."""
    listed: list[str] = []
    for model in spec.models:
        listed += [q for q in model.files if q not in listed]
    ordered = [q for q in spec.quantization_order if q in listed]
    ordered += [q for q in listed if q not in ordered]
    if spec.mode == Mode.quick:
        quick = [q for q in ordered if q in spec.quick_quantizations]
        if not quick:
            raise PlanError(
                f"mode quick runs only {', '.join(spec.quick_quantizations)} (spec.quickQuantizations), "
                f"but the models list only {', '.join(listed)}"
            )
        return quick
    return ordered


def plan(spec: BenchmarkMatrixSpec) -> list[PlannedCell]:
    by_size = sorted(spec.models, key=lambda m: m.parameters_billion)
    return [
        PlannedCell(model, quant) for quant in quantization_sequence(spec) for model in by_size if quant in model.files
    ]
