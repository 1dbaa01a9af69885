"""kopf door for BenchmarkMatrix: one daemon per matrix drives the shared MatrixRunner with a ClusterExecutor.

The daemon reads like its stages: validate and plan the spec, walk the cells (the status is the checkpoint, so
this resumes after a restart), store the report (in a ConfigMap, or in the configured store when it is too
large for one), mark the matrix Completed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client

from kubeinfer import __version__
from kubeinfer.bench.planner import PlanError, PlannedCell, plan
from kubeinfer.bench.runner import MatrixOutcome, MatrixRunner, RunEvents
from kubeinfer.kube.client import api_client
from kubeinfer.kube.conditions import condition, merged
from kubeinfer.kube.objects import owner_reference, put_config_map
from kubeinfer.kube.pod_start import StartReporter
from kubeinfer.metrics import operator as metrics
from kubeinfer.operator.executor import ClusterExecutor
from kubeinfer.operator.store import StatusCheckpointStore
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellResult
from kubeinfer.resources.names import (
    GROUP,
    MANAGED_BY,
    MATRIX_LABEL,
    MATRIX_PLURAL,
    REPORT_KEY,
    VERSION,
    report_name,
)
from kubeinfer.settings import Settings, get_settings
from kubeinfer.storage.reports import ReportStoreError, data_root, put_report, report_key

FINISHED = ("Completed", "Failed")


@kopf.daemon(GROUP, VERSION, MATRIX_PLURAL, cancellation_timeout=60)
def run_matrix(body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger, **_: Any) -> None:
    """Walk the matrix until every cell is finished; the status is the checkpoint, so this resumes."""
    raw = json.loads(json.dumps(dict(body)))
    meta = raw["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation")
    status = raw.get("status") or {}
    if status.get("phase") in FINISHED and status.get("observedGeneration") == generation:
        metrics.publish_matrix(f"{namespace}/{name}", [CellResult.model_validate(c) for c in status.get("cells", [])])
        return
    metrics.MATRICES_RUNNING.inc()
    try:
        MatrixReconciler(body, raw).run(stopped, logger)
    except Exception:
        metrics.RECONCILE_ERRORS.labels("exception").inc()
        raise
    finally:
        metrics.MATRICES_RUNNING.dec()


class MatrixReconciler:
    """One matrix's run, stage by stage; each stage reads or writes the matrix's status."""

    def __init__(self, body: kopf.Body, raw: dict[str, Any]) -> None:
        self.body, self.raw = body, raw
        meta = raw["metadata"]
        self.name, self.namespace, self.generation = meta["name"], meta["namespace"], meta.get("generation")
        self.api = api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.clock = metrics.PhaseClock()
        status = raw.get("status") or {}
        self.start = StartReporter(status.get("conditions") or [], self.put_condition, self.post, self.generation)

    def run(self, stopped: kopf.DaemonStopped, logger: kopf.Logger) -> None:
        if not (self.raw.get("status") or {}).get("phase"):
            self.patch_status({"phase": "Pending"})  # `kubectl get bm` shows a phase from the first reconcile on
        planned = self.validate()
        if planned is None:
            return
        matrix, cells = planned
        store = StatusCheckpointStore(self.custom, self.namespace, self.name, matrix.spec)
        outcome = self.walk_cells(matrix, cells, store, stopped)
        if outcome.interrupted:
            logger.info("stopped before the matrix finished; the next operator resumes from the status")
            return
        self.publish(matrix, outcome, store)

    # --- stages ----------------------------------------------------------------------------------------

    def validate(self) -> tuple[BenchmarkMatrix, list[PlannedCell]] | None:
        """The matrix and its planned cells; None (and the matrix Failed) when the spec cannot be run."""
        raw = self.raw
        try:
            matrix = BenchmarkMatrix.model_validate(
                {k: raw[k] for k in ("apiVersion", "kind", "spec")}
                | {"metadata": {"name": self.name, "namespace": self.namespace}}
            )
            return matrix, plan(matrix.spec)
        except (ValueError, PlanError) as exc:
            metrics.RECONCILE_ERRORS.labels("invalid_spec").inc()
            self.finish("Failed", condition("Ready", False, "InvalidSpec", str(exc), self.generation))
            kopf.warn(self.body, reason="InvalidSpec", message=str(exc))
            return None

    def walk_cells(
        self,
        matrix: BenchmarkMatrix,
        cells: list[PlannedCell],
        store: StatusCheckpointStore,
        stopped: kopf.DaemonStopped,
    ) -> MatrixOutcome:
        """Run every unfinished cell through runner Jobs and server pods; an operator stop interrupts it."""
        executor = ClusterExecutor(
            self.api, self.raw, get_settings().operator, self.emit, self.start, price_problem=self.price_problem
        )

        def relay_stop() -> None:
            stopped.wait()
            executor.stop.set()

        threading.Thread(target=relay_stop, daemon=True).start()
        self.patch_status({"phase": "Running"})
        self.emit("Running", f"{len(cells)} cells")
        metered = metrics.MeteredStore(store, f"{self.namespace}/{self.name}", cells)
        return MatrixRunner(matrix, executor, metered, self.events()).run(resume=True)

    def publish(self, matrix: BenchmarkMatrix, outcome: MatrixOutcome, store: StatusCheckpointStore) -> None:
        """The report into its ConfigMap or the store, where it is and the recommendations into the status, then
        Completed. A store that refuses the report leaves the matrix Running with a ReportStored=False condition,
        and the daemon tries again."""
        name = report_name(self.name)
        settings = get_settings()
        try:
            pointer = place_report(
                self.report(matrix, outcome),
                self.namespace,
                self.name,
                name,
                settings,
                lambda text: self.store_report(name, text),
            )
        except ReportStoreError as exc:
            self.put_condition(condition("ReportStored", False, "StoreUnavailable", str(exc), self.generation))
            self.post("ReportNotStored", str(exc), warning=True)
            raise kopf.TemporaryError(str(exc), delay=settings.operator.report_retry_seconds) from exc
        self.put_condition(condition("ReportStored", True, "Stored", pointer, self.generation))
        store.patch(
            {
                "recommendations": outcome.recommendations,
                "report": pointer,
                "observedGeneration": self.generation,
            }
        )
        message = f"best: {outcome.best}" if outcome.best else "no cell passed"
        self.finish("Completed", condition("Ready", True, "Completed", message, self.generation))
        self.emit("Completed", message)

    # --- pieces of the stages ----------------------------------------------------------------------------

    def emit(self, reason: str, message: str) -> None:
        if reason == "ServerReady":
            self.clock.server_ready(time.monotonic())
        kopf.info(self.body, reason=reason, message=message)

    def post(self, reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(self.body, reason=reason, message=message[:1000])

    def price_problem(self, message: str) -> None:
        """A cell without cost (a malformed node price): a Priced=False condition and a Warning naming the node."""
        self.put_condition(condition("Priced", False, "InvalidPrice", message[:1000], self.generation))
        self.post("InvalidPrice", message, warning=True)

    def events(self) -> RunEvents:
        def started(cell: PlannedCell, index: int, total: int) -> None:
            self.clock.cell_started(time.monotonic())
            self.emit("CellStarted", f"{index}/{total} {cell.key}")

        def finished(result: CellResult, index: int, total: int) -> None:
            self.clock.cell_finished(result, time.monotonic())
            why = (
                f" ({result.rule.value if result.rule else ''} {result.reason or ''})".rstrip() if result.reason else ""
            )
            self.emit("CellFinished", f"{index}/{total} {result.key}: {result.status.value}{why}"[:1000])

        return RunEvents(cell_started=started, cell_finished=finished, message=lambda text: self.emit("Stress", text))

    def report(self, matrix: BenchmarkMatrix, outcome: MatrixOutcome) -> dict[str, Any]:
        """The document `kubeinfer bench run` writes as report.json, for the same outcome."""
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "kubeinfer_version": __version__,
                "config": matrix.spec.to_manifest(),
                "test_duration_seconds": outcome.elapsed_seconds,
                "stress_cell": outcome.stress_cell,
            },
            "results": [cell.model_dump(mode="json", by_alias=False) for cell in outcome.cells],
            "recommendations": outcome.recommendations,
            "best": outcome.best,
        }

    def store_report(self, name: str, text: str) -> None:
        body = {
            "metadata": {
                "name": name,
                "labels": {**MANAGED_BY, MATRIX_LABEL: self.name},
                "ownerReferences": [owner_reference(self.raw, controller=False)],
            },
            "data": {REPORT_KEY: text},
        }
        put_config_map(client.CoreV1Api(self.api), self.namespace, body)

    def finish(self, phase: str, ready: dict[str, Any]) -> None:
        self.patch_status(
            {
                "phase": phase,
                "conditions": self.conditions_with(ready),
                "observedGeneration": ready["observedGeneration"],
            }
        )

    def put_condition(self, made: dict[str, Any]) -> None:
        """One condition into the status, the others kept (a status patch replaces the whole list)."""
        self.patch_status({"conditions": self.conditions_with(made)})

    def conditions_with(self, made: dict[str, Any]) -> list[dict[str, Any]]:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, MATRIX_PLURAL, self.name)
        return merged((body.get("status") or {}).get("conditions"), made)

    def patch_status(self, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, MATRIX_PLURAL, self.name, {"status": status}
        )


def place_report(
    report: dict[str, Any],
    namespace: str,
    name: str,
    config_map: str,
    settings: Settings,
    write_config_map: Callable[[str], None],
) -> str:
    """Write the report where it fits and return `status.report`: `configmap/<config_map>` up to
    `operator.report_config_map_max_bytes` (a ConfigMap holds 1 MiB, its metadata included), else the store's
    pointer (`store:reports/<ns>/<name>/report.json` or `s3://<bucket>/<object>`)."""
    text = json.dumps(report)
    data = text.encode()
    if len(data) <= settings.operator.report_config_map_max_bytes:
        write_config_map(text)
        return f"configmap/{config_map}"
    root = data_root(settings.gateway.data_dir, settings.cache_dir)
    return put_report(settings.storage, root, report_key(namespace, name), data)
