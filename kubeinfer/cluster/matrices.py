"""BenchmarkMatrices of a namespace: phase and progress, and a finished matrix's report wherever it lives.

The operator names the report in `status.report`: `configmap/<name>` (key `report.json`), or, for a report
too large for a ConfigMap, `store:reports/<ns>/<name>/report.json` (the data directory) or
`s3://<bucket>/<object>` (kubeinfer/storage/reports.py). It is the document `kubeinfer bench run` writes,
so the console renders it with the domain's report models and `kubeinfer bench report` writes the files
`bench run` writes. The raw per-request records of each cell are in ConfigMaps of their own
(kubeinfer/kube/record_maps.py), read here for `bench report`.
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
from kubeinfer.kube.record_maps import AssembledRecords, assemble, records_selector
from kubeinfer.resources.benchmark_matrix import CellResult
from kubeinfer.resources.names import GROUP, MATRIX_PLURAL, REPORT_KEY, VERSION
from kubeinfer.settings import Settings, get_settings
from kubeinfer.storage.reports import S3_SCHEME, STORE_SCHEME, ReportStoreError, data_root, read_report_bytes

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


def read_matrix(namespace: str, name: str, project: str, settings: Settings | None = None) -> ClusterMatrix:
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
            report = read_report(namespace, what, summary.report, settings)
        except ReportUnavailable as exc:
            return ClusterMatrix(summary, [], None, str(exc))
        return ClusterMatrix(summary, report.cells, report, None)
    try:
        cells = [CellResult.model_validate(cell) for cell in (body.get("status") or {}).get("cells") or []]
    except ValidationError as exc:
        return ClusterMatrix(summary, [], None, f"{what}: status.cells is not valid: {_first(exc)}")
    return ClusterMatrix(summary, cells, None, None)


class ReportUnavailable(ClusterError, ValueError):
    """A matrix whose report cannot be read (unfinished, or its ConfigMap or stored copy missing or broken)."""


def report_pointer(where: str, status: dict[str, Any]) -> str:
    """Where a Completed matrix's report is (`configmap/<name>`, `store:<path>` or `s3://<bucket>/<object>`).

    Raises ReportUnavailable for an unfinished matrix and for a pointer of another kind.
    """
    phase = status.get("phase") or "Pending"
    if phase != "Completed":
        progress = f"{status.get('cellsDone', 0)}/{status.get('cellsTotal', 0)} cells done"
        why = next((c.get("message") for c in status.get("conditions") or [] if c.get("message")), None)
        detail = f"phase {phase}, {progress}" + (f": {why}" if why and phase == "Failed" else "")
        raise ReportUnavailable(f"{where} is not finished ({detail}); its report is written when it completes")
    return _checked_pointer(where, status.get("report"))


def _checked_pointer(where: str, pointer: str | None) -> str:
    text = str(pointer or "")
    kind, _, config_map = text.partition("/")
    if (kind == "configmap" and config_map) or text.startswith((STORE_SCHEME, S3_SCHEME)):
        return text
    raise ReportUnavailable(f"{where} is Completed but status.report is {pointer!r}")


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
    return parse_report_document(raw, f"ConfigMap {config_map}: {REPORT_KEY}")


def read_stored_document(pointer: str, where: str, settings: Settings) -> dict[str, Any]:
    """The report a `store:` or `s3://` pointer names, read from this process's configured store."""
    root = data_root(settings.gateway.data_dir, settings.cache_dir)
    try:
        raw = read_report_bytes(pointer, settings.storage, root)
    except ReportStoreError as exc:
        raise ReportUnavailable(f"{where} is Completed but its report cannot be read: {exc}") from exc
    return parse_report_document(raw, pointer)


def parse_report_document(raw: str | bytes, source: str) -> dict[str, Any]:
    """JSON with a results list, not yet validated; ReportUnavailable naming `source` otherwise."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ReportUnavailable(f"{source} is not JSON ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise ReportUnavailable(f"{source} is not a kubeinfer report (no results list)")
    return document


def load_report_document(
    core_api: Any, namespace: str, where: str, pointer: str, settings: Settings | None = None
) -> dict[str, Any]:
    """The report wherever `pointer` says it is: its ConfigMap, the data directory or the bucket."""
    if pointer.startswith("configmap/"):
        return read_report_document(core_api, namespace, where, pointer.removeprefix("configmap/"))
    return read_stored_document(pointer, where, settings or get_settings())


def read_report(namespace: str, what: str, pointer: str | None, settings: Settings | None = None) -> ReportData:
    """The report of a Completed matrix, validated by the domain's report models (for the console)."""
    checked = _checked_pointer(what, pointer)
    document = load_report_document(core(), namespace, what, checked, settings)
    source = describe_pointer(checked, namespace)
    try:
        return as_report_data(document)
    except ValidationError as exc:
        raise ReportUnavailable(f"{source}: not a kubeinfer report: {_first(exc)}") from exc
    except (ValueError, TypeError) as exc:
        raise ReportUnavailable(f"{source}: not a kubeinfer report ({exc})") from exc


def describe_pointer(pointer: str, namespace: str) -> str:
    """`configmap/q-report in namespace ns`, or the store pointer as it is."""
    return f"{pointer} in namespace {namespace}" if pointer.startswith("configmap/") else pointer


@dataclass
class FetchedReport:
    namespace: str
    #: `configmap/<name>`, `store:<path>` or `s3://<bucket>/<object>` (the matrix's status.report).
    pointer: str
    report: dict[str, Any]
    #: The cells' per-request records, when asked for (`with_records`).
    records: AssembledRecords | None = None

    @property
    def config_map(self) -> str | None:
        """The report ConfigMap's name; None when the report was too large for one and is in the store."""
        return self.pointer.removeprefix("configmap/") if self.pointer.startswith("configmap/") else None

    @property
    def source(self) -> str:
        return describe_pointer(self.pointer, self.namespace)


def fetch_report(
    name: str,
    namespace: str | None = None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    settings: Settings | None = None,
    with_records: bool = False,
) -> FetchedReport:
    """Read BenchmarkMatrix `name` and, once it is Completed, the report its status points at (for the CLI).

    A report in the store is read with `settings.storage` (default: this process's `KUBEINFER_*` settings).
    `with_records` also reads the cells' per-request records from their ConfigMaps.
    """
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
    pointer = report_pointer(where, matrix.get("status") or {})
    document = load_report_document(client.CoreV1Api(api), namespace, where, pointer, settings)
    records = None
    if with_records:
        found = call(
            lambda: client.CoreV1Api(api).list_namespaced_config_map(
                namespace, label_selector=records_selector(name), _request_timeout=REQUEST_TIMEOUT
            ),
            f"the request records of {where}",
            server,
        )
        records = assemble((api.sanitize_for_serialization(item) for item in found.items), name)
    return FetchedReport(namespace, pointer, document, records)


def _first(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
