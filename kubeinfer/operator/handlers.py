"""kopf handlers: one daemon per BenchmarkMatrix drives the shared MatrixRunner with a ClusterExecutor."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from prometheus_client import start_http_server

from kubeinfer import __version__
from kubeinfer.bench.planner import PlanError, PlannedCell, plan
from kubeinfer.bench.runner import MatrixRunner, RunEvents
from kubeinfer.metrics import operator as metrics
from kubeinfer.operator.executor import ClusterExecutor
from kubeinfer.operator.kube import shared_api_client
from kubeinfer.operator.names import GROUP, VERSION
from kubeinfer.operator.store import StatusCheckpointStore
from kubeinfer.resources.benchmark_matrix import BenchmarkMatrix, CellResult
from kubeinfer.settings import get_settings

FINISHED = ("Completed", "Failed")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    settings.posting.level = 20
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Sync daemons (one per matrix, install and batch) each hold a pool thread for their whole run.
    settings.execution.max_workers = get_settings().operator.max_workers
    port = get_settings().operator.metrics_port
    if port:
        try:
            start_http_server(port)
        except OSError as exc:  # metrics are for watching the operator; a taken port must not stop its work
            logger.error(f"metrics: cannot listen on port {port}: {exc}")
        else:
            logger.info(f"metrics on :{port}/metrics")


def _condition(kind: str, status: str, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "observedGeneration": generation,
    }


@kopf.daemon(GROUP, VERSION, "benchmarkmatrices", cancellation_timeout=60)
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
        _run(body, raw, stopped, logger)
    except Exception:
        metrics.RECONCILE_ERRORS.labels("exception").inc()
        raise
    finally:
        metrics.MATRICES_RUNNING.dec()


def _run(body: kopf.Body, raw: dict[str, Any], stopped: kopf.DaemonStopped, logger: kopf.Logger) -> None:
    meta = raw["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation")
    api = shared_api_client()
    custom = client.CustomObjectsApi(api)
    try:
        matrix = BenchmarkMatrix.model_validate(
            {k: raw[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": name, "namespace": namespace}}
        )
        cells = plan(matrix.spec)
    except (ValueError, PlanError) as exc:
        metrics.RECONCILE_ERRORS.labels("invalid_spec").inc()
        _finish(custom, namespace, name, "Failed", _condition("Ready", "False", "InvalidSpec", str(exc), generation))
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        return

    clock = metrics.PhaseClock()

    def emit(reason: str, message: str) -> None:
        if reason == "ServerReady":
            clock.server_ready(time.monotonic())
        kopf.info(body, reason=reason, message=message)

    executor = ClusterExecutor(api, raw, get_settings().operator, emit)
    store = StatusCheckpointStore(custom, namespace, name, matrix.spec)

    def relay_stop() -> None:
        stopped.wait()
        executor.stop.set()

    threading.Thread(target=relay_stop, daemon=True).start()

    def started(cell: PlannedCell, index: int, total: int) -> None:
        clock.cell_started(time.monotonic())
        emit("CellStarted", f"{index}/{total} {cell.key}")

    def finished(result: CellResult, index: int, total: int) -> None:
        clock.cell_finished(result, time.monotonic())
        why = f" ({result.rule.value if result.rule else ''} {result.reason or ''})".rstrip() if result.reason else ""
        emit("CellFinished", f"{index}/{total} {result.key}: {result.status.value}{why}"[:1000])

    events = RunEvents(
        cell_started=started,
        cell_finished=finished,
        message=lambda text: emit("Stress", text),
    )
    emit("Running", f"{len(cells)} cells")
    metered = metrics.MeteredStore(store, f"{namespace}/{name}", cells)
    outcome = MatrixRunner(matrix, executor, metered, events).run(resume=True)
    if outcome.interrupted:
        logger.info("stopped before the matrix finished; the next operator resumes from the status")
        return
    report_name = f"{name}-report"
    report = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "kubeinfer_version": __version__,
            "config": matrix.spec.to_manifest(),
            "test_duration_seconds": outcome.elapsed_seconds,
            "stress_cell": outcome.stress_cell,
        },
        "results": [cell.model_dump(mode="json", by_alias=False) for cell in outcome.cells],
        "recommendations": outcome.recommendations,
        "best": outcome.best,
    }
    _store_report(client.CoreV1Api(api), namespace, report_name, raw, report)
    store.patch(
        {
            "recommendations": outcome.recommendations,
            "report": f"configmap/{report_name}",
            "observedGeneration": generation,
        }
    )
    message = f"best: {outcome.best}" if outcome.best else "no cell passed"
    _finish(custom, namespace, name, "Completed", _condition("Ready", "True", "Completed", message, generation))
    emit("Completed", message)


def _finish(custom: client.CustomObjectsApi, namespace: str, name: str, phase: str, condition: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "benchmarkmatrices",
        name,
        {"status": {"phase": phase, "conditions": [condition], "observedGeneration": condition["observedGeneration"]}},
    )


def _store_report(
    core: client.CoreV1Api, namespace: str, name: str, owner: dict[str, Any], report: dict[str, Any]
) -> None:
    body = {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "kubeinfer", f"{GROUP}/matrix": owner["metadata"]["name"]},
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "data": {"report.json": json.dumps(report)},
    }
    try:
        core.create_namespaced_config_map(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, body)
