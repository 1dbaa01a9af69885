"""Operator metrics: cells by status and rule, how long a cell's phases take, matrices running, errors."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from kubeinfer.bench.checkpoint import Checkpoint, CheckpointStore
from kubeinfer.bench.planner import PlannedCell
from kubeinfer.bench.runner import ordered_results
from kubeinfer.metrics.bench import publish_results
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrixSpec, CellResult, CellStatus, Rule

#: The phases of one cell in a cluster (docs/operator.md): prepare Job and pre-flight, server Pod until
#: Ready, measure Job and recording.
PHASES = ("prepare", "serve", "measure")
#: Why a matrix's daemon stopped with an error: its spec could not be planned, or an exception escaped.
ERROR_REASONS = ("invalid_spec", "exception")

CELLS = Gauge(
    "kubeinfer_operator_cells",
    "Cells of each matrix by status and the rule that ended them (rule is empty when none did)",
    ["matrix", "status", "rule"],
)
CELLS_FINISHED = Counter(
    "kubeinfer_operator_cells_finished_total", "Cells this operator finished, by status and rule", ["status", "rule"]
)
PHASE_DURATION = Histogram(
    "kubeinfer_operator_cell_phase_duration_seconds",
    "Time one cell spent in a phase: prepare (Job and pre-flight), serve (server Pod until Ready), "
    "measure (measure Job and recording)",
    ["phase"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
)
RECONCILE_ERRORS = Counter(
    "kubeinfer_operator_reconcile_errors_total", "Matrix daemons that ended with an error, by reason", ["reason"]
)
MATRICES_RUNNING = Gauge("kubeinfer_operator_matrices_running", "Matrices whose cells this operator is running now")

for _phase in PHASES:  # zero series up front, so quantiles and rates answer before the first cell
    PHASE_DURATION.labels(_phase)
for _reason in ERROR_REASONS:
    RECONCILE_ERRORS.labels(_reason)

_published: dict[str, set[tuple[str, str]]] = {}
_lock = threading.Lock()


def publish_cells(matrix: str, cells: Iterable[CellResult]) -> None:
    """Set a matrix's cell counts; combinations it no longer has drop to 0 rather than keep a stale count."""
    counts = Tally((cell.status.value, cell.rule.value if cell.rule else "") for cell in cells)
    with _lock:
        previous = _published.get(matrix, set())
        for status, rule in previous | set(counts):
            CELLS.labels(matrix, status, rule).set(counts.get((status, rule), 0))
        _published[matrix] = previous | set(counts)


def cell_finished(status: CellStatus, rule: Rule | None) -> None:
    CELLS_FINISHED.labels(status.value, rule.value if rule else "").inc()


class PhaseClock:
    """Times one matrix's cells from the operator's own events, without reaching into the executor.

    A cell starts, its server becomes Ready (the `ServerReady` event; the cell's `load_seconds` is the serve
    phase), and it finishes. A cell that ends before a server is Ready spent all its time in prepare.
    """

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.ready_at: float | None = None

    def cell_started(self, at: float) -> None:
        self.started_at, self.ready_at = at, None

    def server_ready(self, at: float) -> None:
        if self.started_at is not None and self.ready_at is None:
            self.ready_at = at

    def phases(self, result: CellResult, at: float) -> dict[str, float]:
        """The phase durations of the cell that just finished; empty when no start was seen (a resumed cell)."""
        started, ready = self.started_at, self.ready_at
        self.started_at = self.ready_at = None
        if started is None:
            return {}
        if ready is None:
            return {"prepare": at - started}
        serve = result.load_seconds or 0.0
        return {"prepare": max(0.0, ready - started - serve), "serve": serve, "measure": at - ready}

    def cell_finished(self, result: CellResult, at: float) -> None:
        for phase, seconds in self.phases(result, at).items():
            PHASE_DURATION.labels(phase).observe(seconds)
        cell_finished(result.status, result.rule)


def publish_matrix(matrix: str, cells: list[CellResult]) -> None:
    """Cell counts and benchmark results of one matrix."""
    publish_cells(matrix, cells)
    publish_results(matrix, cells)


class MeteredStore:
    """A CheckpointStore that publishes the matrix's cells whenever they are loaded or saved.

    The checkpoint is where a cell's state changes, resumed cells included, so the gauges follow the
    status without a second bookkeeping of their own.
    """

    def __init__(self, inner: CheckpointStore, matrix: str, cells: list[PlannedCell]) -> None:
        self.inner = inner
        self.matrix = matrix
        self.cells = cells

    def load(self, spec: BenchmarkMatrixSpec) -> Checkpoint:
        checkpoint = self.inner.load(spec)
        publish_matrix(self.matrix, ordered_results(self.cells, checkpoint.cells))
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        self.inner.save(checkpoint)
        publish_matrix(self.matrix, ordered_results(self.cells, checkpoint.cells))


#: How a ModelInstall's install Job ended: files verified, checksum mismatch, or another failure.
DOWNLOAD_RESULTS = ("installed", "checksum_mismatch", "failed")
MODEL_DOWNLOADS = Counter(
    "kubeinfer_operator_model_downloads_total", "ModelInstall install Jobs that finished, by result", ["result"]
)
MODEL_DOWNLOAD_BYTES = Counter(
    "kubeinfer_operator_model_download_bytes_total", "Bytes of model files installed into the model cache"
)
OOM_FALLBACKS = Counter(
    "kubeinfer_operator_oom_fallbacks_total", "Served models moved to a smaller quantization after an OOM kill"
)
for _result in DOWNLOAD_RESULTS:
    MODEL_DOWNLOADS.labels(_result)


def model_installed(size_bytes: int) -> None:
    MODEL_DOWNLOADS.labels("installed").inc()
    MODEL_DOWNLOAD_BYTES.inc(size_bytes)


def model_install_failed(reason: str) -> None:
    MODEL_DOWNLOADS.labels("checksum_mismatch" if reason == "ChecksumMismatch" else "failed").inc()
