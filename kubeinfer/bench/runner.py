"""Run a BenchmarkMatrix: plan, apply the termination rules, execute cells, checkpoint, report.

The runner is the same for every executor; `kubeinfer bench run` gives it a LocalExecutor. A run stopped
by Ctrl-C or SIGTERM checkpoints the finished cells (the cell in progress is dropped and re-run by
`--resume`); a run killed outright resumes from the checkpoint written after the last finished cell.

The signal handler both raises KeyboardInterrupt and sets the `stop` event. The event is the guarantee:
Python discards an exception raised while a finaliser (`__del__`, a generator being collected) runs,
so the raise alone once let an interrupted run go on to the end and exit 0 (seen in CI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeinfer.bench.checkpoint import Checkpoint, CheckpointStore, FileCheckpointStore, spec_fingerprint
from kubeinfer.bench.executor import CellExecutor
from kubeinfer.bench.outcome import judge_cell
from kubeinfer.bench.planner import PlannedCell, plan
from kubeinfer.bench.ratings import rate_profile
from kubeinfer.bench.recommend import best_cell, recommend
from kubeinfer.bench.rules import select_stress_cell, skip_before_run
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellResult, CellStatus, ProfileResult, Rule

STRESS = "stress"


class RunInterrupted(Exception):
    """The run stopped early on request; its checkpoint and a partial report were written."""


@dataclass
class RunEvents:
    """Hooks for progress displays; every one is optional."""

    cell_started: Callable[[PlannedCell, int, int], None] = lambda _c, _i, _n: None
    cell_finished: Callable[[CellResult, int, int], None] = lambda _r, _i, _n: None
    message: Callable[[str], None] = lambda _m: None


@dataclass
class MatrixOutcome:
    cells: list[CellResult]
    recommendations: dict[str, Any]
    best: str | None
    elapsed_seconds: float
    stress_cell: str | None = None
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def ordered_results(cells: list[PlannedCell], done: dict[str, CellResult]) -> list[CellResult]:
    return [done.get(cell.key) or cell.pending_result() for cell in cells]


class MatrixRunner:
    def __init__(
        self,
        matrix: BenchmarkMatrix,
        executor: CellExecutor,
        store: CheckpointStore | Path,
        events: RunEvents | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.matrix = matrix
        self.stop = stop or threading.Event()
        self.spec = matrix.spec
        self.executor = executor
        self.store = FileCheckpointStore(store) if isinstance(store, Path) else store
        self.events = events or RunEvents()
        self.cells = plan(self.spec)

    def run(self, resume: bool = False) -> MatrixOutcome:
        checkpoint = self.store.load(self.spec) if resume else Checkpoint(spec_fingerprint(self.spec))
        started = time.monotonic() - checkpoint.elapsed_seconds
        limit_gb = self.spec.limits.max_memory_gb or self.executor.target_memory_gb(self.spec)
        try:
            self._run_cells(checkpoint, limit_gb, started)
            self._run_stress(checkpoint, started)
        except KeyboardInterrupt:
            checkpoint.elapsed_seconds = time.monotonic() - started
            self.store.save(checkpoint)
            outcome = self._outcome(checkpoint, started)
            outcome.interrupted = True
            return outcome
        checkpoint.elapsed_seconds = time.monotonic() - started
        self.store.save(checkpoint)
        return self._outcome(checkpoint, started)

    def _run_cells(self, checkpoint: Checkpoint, limit_gb: float, started: float) -> None:
        total = len(self.cells)
        for index, cell in enumerate(self.cells, start=1):
            if cell.key in checkpoint.cells:
                continue
            self._stop_if_asked()
            finished = [checkpoint.cells[c.key] for c in self.cells if c.key in checkpoint.cells]
            self.events.cell_started(cell, index, total)
            skip = skip_before_run(cell, finished, self.spec, limit_gb)
            if skip is not None:
                result = cell.pending_result()
                result.status, result.rule, result.reason = CellStatus.skipped, skip.rule, skip.reason
            else:
                result = self.executor.run_cell(cell, self.spec, limit_gb)
            self._stop_if_asked()
            checkpoint.cells[cell.key] = result
            checkpoint.elapsed_seconds = time.monotonic() - started
            self.store.save(checkpoint)
            self.events.cell_finished(result, index, total)

    def _run_stress(self, checkpoint: Checkpoint, started: float) -> None:
        if STRESS not in self.spec.profiles.enabled() or checkpoint.stress_done:
            return
        results = ordered_results(self.cells, checkpoint.cells)
        chosen = select_stress_cell(results)
        if chosen is not None:
            planned = next(c for c in self.cells if c.key == chosen.key)
            self.events.message(f"stress: running on {chosen.key} (last passing configuration)")
            stressed = self.executor.run_stress(planned, self.spec)
            self._stop_if_asked()
            chosen.profiles[STRESS] = rate_profile(STRESS, stressed, self.spec.profiles)
            if chosen.status != CellStatus.failed:
                chosen.status, chosen.rule, chosen.reason = judge_cell(chosen.profiles)
        reason = (
            f"stress runs only on the last passing configuration, {chosen.key}"
            if chosen
            else "no configuration passed with an acceptable rating; nothing to stress"
        )
        for result in results:
            if result is not chosen and result.status in (CellStatus.passed, CellStatus.partial):
                result.profiles[STRESS] = ProfileResult(status="skipped", reason=f"{Rule.stress_selection}: {reason}")
        checkpoint.stress_done = True
        checkpoint.elapsed_seconds = time.monotonic() - started
        self.store.save(checkpoint)

    def _stop_if_asked(self) -> None:
        """A result measured after the stop was asked for may be cut short: drop it, as the interrupt would."""
        if self.stop.is_set():
            raise KeyboardInterrupt

    def _outcome(self, checkpoint: Checkpoint, started: float) -> MatrixOutcome:
        results = ordered_results(self.cells, checkpoint.cells)
        stressed = next(
            (r.key for r in results if r.profiles.get(STRESS) and r.profiles[STRESS].status != "skipped"),
            None,
        )
        return MatrixOutcome(
            cells=results,
            recommendations=recommend(results),
            best=best_cell(results),
            elapsed_seconds=round(time.monotonic() - started, 1),
            stress_cell=stressed,
        )
