"""BenchmarkMatrices of a namespace: phase and progress, and a finished matrix's report from its ConfigMap.

The operator names the report in `status.report` (`configmap/<name>`, key `report.json`), the same
document `kubeinfer bench run` writes, so the console renders it with the domain's report models and
`kubeinfer bench report` writes the files `bench run` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kubeinfer.bench.report import ReportData, as_report_data
from kubeinfer.cluster.access import REQUEST_TIMEOUT, core, custom_objects, project_of, visible_to
from kubeinfer.kube.client import api_client, default_namespace
from kubeinfer.kube.errors import ClusterError, NotFound, call
from kubeinfer.resources.benchmark_matrix import CellResult
from kubeinfer.resources.names import GROUP, MATRIX_PLURAL, REPORT_KEY, VERSION

PLURAL = MATRIX_PLURAL


@dataclass(frozen=True)
class MatrixSummary:
    """What the matrices list shows of one BenchmarkMatrix."""

    name: str
    phase: str
    cells_done: int
    cells_total: int
    best: str | None
    project: str | None
    created: str | None
    message: str | None
    report: str | None

    @property
    def percent(self) -> float:
        return 100 * self.cells_done / self.cells_total if self.cells_total else 0.0


@dataclass(frozen=True)
class ClusterMatrix:
    """One matrix: its cells (from the report once Completed, else from the status so far)."""

    summary: MatrixSummary
    cells: list[CellResult]
    report: ReportData | None
    #: Why the report or the cells cannot be shown; None when all is well.
    error: str | None


def summarize(body: dict[str, Any]) -> MatrixSummary:
    status = body.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    failed = [c.get("message") for c in status.get("conditions") or [] if c.get("message")]
    return MatrixSummary(
        name=body["metadata"]["name"],
        phase=phase,
        cells_done=int(status.get("cellsDone") or 0),
        cells_total=int(status.get("cellsTotal") or 0),
        best=status.get("best"),
        project=project_of(body),
        created=body["metadata"].get("creationTimestamp"),
        message=failed[0] if failed and phase == "Failed" else None,
        report=status.get("report"),
    )


def list_matrices(namespace: str, project: str) -> list[MatrixSummary]:
    """The matrices `project` may see, newest first."""
    listed = call(
        lambda: custom_objects().list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
        ),
        f"list BenchmarkMatrices in namespace {namespace}",
    )
    items = [item for item in listed["items"] if visible_to(item, project)]
    items.sort(key=lambda item: item["metadata"].get("creationTimestamp") or "", reverse=True)
    return [summarize(item) for item in items]


def read_matrix(namespace: str, name: str, project: str) -> ClusterMatrix:
    """One matrix `project` may see; raises NotFound for a missing matrix and for another project's."""
    what = f"BenchmarkMatrix {name} in namespace {namespace}"
    body = call(
        lambda: custom_objects().get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
        ),
        what,
    )
    if not visible_to(body, project):
        raise NotFound(f"{what} not found")
    summary = summarize(body)
    if summary.phase == "Completed":
        try:
            report = read_report(namespace, what, summary.report)
        except ReportUnavailable as exc:
            return ClusterMatrix(summary, [], None, str(exc))
        return ClusterMatrix(summary, report.cells, report, None)
    try:
        cells = [CellResult.model_validate(cell) for cell in (body.get("status") or {}).get("cells") or []]
    except ValidationError as exc:
        return ClusterMatrix(summary, [], None, f"{what}: status.cells is not valid: {_first(exc)}")
    return ClusterMatrix(summary, cells, None, None)


class ReportUnavailable(ClusterError, ValueError):
    """A matrix whose report cannot be read (unfinished, or its ConfigMap missing or broken); says which and why."""


def report_config_map(where: str, status: dict[str, Any]) -> str:
    """The report ConfigMap's name from a Completed matrix's status; raises ReportUnavailable otherwise."""
    phase = status.get("phase") or "Pending"
    if phase != "Completed":
        progress = f"{status.get('cellsDone', 0)}/{status.get('cellsTotal', 0)} cells done"
        why = next((c.get("message") for c in status.get("conditions") or [] if c.get("message")), None)
        detail = f"phase {phase}, {progress}" + (f": {why}" if why and phase == "Failed" else "")
        raise ReportUnavailable(f"{where} is not finished ({detail}); its report is written when it completes")
    return _config_map_of(where, status.get("report"))


def _config_map_of(where: str, pointer: str | None) -> str:
    kind, _, config_map = str(pointer or "").partition("/")
    if kind != "configmap" or not config_map:
        raise ReportUnavailable(f"{where} is Completed but status.report is {pointer!r}")
    return config_map


def read_report_document(core_api: Any, namespace: str, where: str, config_map: str) -> dict[str, Any]:
    """The report JSON from ConfigMap `config_map`: a document with a results list, not yet validated."""
    try:
        body = call(
            lambda: core_api.read_namespaced_config_map(config_map, namespace, _request_timeout=REQUEST_TIMEOUT),
            f"report ConfigMap {config_map} of {where}",
            core_api.api_client.configuration.host,
        )
    except NotFound as exc:
        raise ReportUnavailable(f"{where} is Completed but its report ConfigMap {config_map} is missing") from exc
    raw = (body.data or {}).get(REPORT_KEY)
    if raw is None:
        raise ReportUnavailable(f"ConfigMap {config_map} in namespace {namespace} has no {REPORT_KEY} key")
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ReportUnavailable(f"ConfigMap {config_map}: {REPORT_KEY} is not JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ReportUnavailable(f"ConfigMap {config_map}: {REPORT_KEY} is not a kubeinfer report (no results list)")
    return document


def read_report(namespace: str, what: str, pointer: str | None) -> ReportData:
    """The report of a Completed matrix, validated by the domain's report models (for the console)."""
    config_map = _config_map_of(what, pointer)
    document = read_report_document(core(), namespace, what, config_map)
    try:
        return as_report_data(document)
    except ValidationError as exc:
        raise ReportUnavailable(f"ConfigMap {config_map}: not a kubeinfer report: {_first(exc)}") from exc
    except (ValueError, TypeError) as exc:
        raise ReportUnavailable(f"ConfigMap {config_map}: {REPORT_KEY} is not a kubeinfer report ({exc})") from exc


@dataclass
class FetchedReport:
    namespace: str
    config_map: str
    report: dict[str, Any]


def fetch_report(
    name: str, namespace: str | None = None, kubeconfig: Path | None = None, context: str | None = None
) -> FetchedReport:
    """Read BenchmarkMatrix `name` and, once it is Completed, the report its status points at (for the CLI)."""
    from kubernetes import client

    api = api_client(kubeconfig, context)
    namespace = namespace or default_namespace(kubeconfig, context)
    server = api.configuration.host
    where = f"BenchmarkMatrix {name} in namespace {namespace}"
    try:
        matrix = call(
            lambda: client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            ),
            where,
            server,
        )
    except NotFound as exc:
        raise NotFound(f"{exc} (kubectl get benchmarkmatrices -n {namespace} lists them)") from exc
    config_map = report_config_map(where, matrix.get("status") or {})
    return FetchedReport(
        namespace, config_map, read_report_document(client.CoreV1Api(api), namespace, where, config_map)
    )


def _first(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
